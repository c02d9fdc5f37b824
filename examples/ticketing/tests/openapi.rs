//! The OpenAPI document: generated from the handlers, served whole by the all-in-one app and in
//! parts by each service, and in step with the API table of docs/system.md (drift fails here).

use std::collections::BTreeSet;

use serde_json::Value;
use ticketing::{Settings, TicketingApp};

async fn document(path: &str) -> Value {
    let app = TicketingApp::build(Settings::for_tests(ticketing_test_app::JWT_KEY))
        .await
        .expect("build");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// `(METHOD, /path/{param})` of every operation in a document.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            found.insert((method.to_uppercase(), path.clone()));
        }
    }
    found
}

/// `(METHOD, /path/{param})` of every row of the HTTP API table of docs/system.md.
fn readme_rows() -> BTreeSet<(String, String)> {
    let readme = include_str!("../../../docs/system.md");
    let table = readme
        .split("HTTP API (compatible with the original")
        .nth(1)
        .expect("the API table of docs/system.md");
    table
        .lines()
        .skip_while(|line| !line.starts_with("| request"))
        .skip(2)
        .take_while(|line| line.starts_with("| `"))
        .map(|line| {
            let request = line.split('`').nth(1).unwrap();
            let mut words = request.split_whitespace();
            let method = words.next().unwrap().to_owned();
            let path = words
                .next()
                .unwrap()
                .split('[')
                .next()
                .unwrap()
                .replace(":id", "{id}");
            (method, path)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_exactly_the_operations_of_the_api_table() {
    let document = document("/api/openapi.json").await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let documented = operations(&document);
    let table = readme_rows();
    assert_eq!(table.len(), 14, "{table:?}");
    assert_eq!(documented, table);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_declares_the_statuses_the_edge_can_answer() {
    let document = document("/api/openapi.json").await;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let declared: BTreeSet<&str> = operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let what = format!("{method} {path}: {declared:?}");
            assert!(declared.contains("408"), "{what}");
            assert!(!declared.contains("500"), "{what}");
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(declared.contains(status), "{what}");
                }
            }
            if operation.get("security").is_some() {
                assert!(declared.contains("401"), "{what}");
            }
            if path.contains("{id}") {
                assert!(declared.contains("404"), "{what}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_serves_its_part_under_its_own_prefix() {
    let whole = operations(&document("/api/openapi.json").await);
    let mut parts = BTreeSet::new();
    for (path, prefix) in [
        ("/api/users/openapi.json", "/api/users"),
        ("/api/tickets/openapi.json", "/api/tickets"),
        ("/api/orders/openapi.json", "/api/orders"),
        ("/api/payments/openapi.json", "/api/payments"),
    ] {
        let part = operations(&document(path).await);
        assert!(!part.is_empty(), "{path}");
        assert!(part.iter().all(|(_, p)| p.starts_with(prefix)), "{path}");
        parts.extend(part);
    }
    assert_eq!(parts, whole);
}
