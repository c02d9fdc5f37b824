//! A schema-driven fuzz of the running all-in-one app: schemathesis (from PyPI; `scripts/test`
//! installs it and sets `SCHEMATHESIS`) reads `/api/openapi.json` and sends thousands of
//! generated requests, signed in and not. Every answer must be something other than a 500,
//! have a status the document declares for that operation, and a body that conforms to it.

#![allow(clippy::print_stdout)]

use std::process::Command;

use ticketing::{Settings, TicketingApp};
use ticketing_test_app::system::{Endpoints, sign_up};

/// Seconds of generated requests per pass (two passes: signed in, and not).
const SECONDS_PER_PASS: &str = "45";

fn schemathesis() -> String {
    let path = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../.test-services/schemathesis-venv/bin/schemathesis"
        )
        .to_owned()
    });
    assert!(
        std::path::Path::new(&path).is_file(),
        "schemathesis is missing at {path} (scripts/test installs it)"
    );
    path
}

/// Runs one pass; the number of test cases it generated.
fn pass(base: &str, cookie: Option<&str>) -> u64 {
    let mut command = Command::new(schemathesis());
    command
        .arg("run")
        .arg(format!("{base}/api/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-time",
            SECONDS_PER_PASS,
            "--request-timeout",
            "20",
            "--no-color",
        ])
        .env("PYTHONUNBUFFERED", "1");
    if let Some(cookie) = cookie {
        command.args(["-H", &format!("Cookie: {cookie}")]);
    }
    let output = command.output().expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found failures (signed in: {}):\n{stdout}\n{stderr}",
        cookie.is_some()
    );
    // "Test cases:\n  2993 generated, 2993 passed"
    let generated = stdout
        .lines()
        .skip_while(|line| !line.starts_with("Test cases:"))
        .nth(1)
        .and_then(|line| line.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no test case count in:\n{stdout}"));
    println!(
        "schemathesis (signed in: {}): {generated} test cases passed",
        cookie.is_some()
    );
    generated
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_generated_requests_get_declared_statuses_and_conforming_bodies() {
    let app = TicketingApp::build(Settings::for_tests(ticketing_test_app::JWT_KEY))
        .await
        .expect("build");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let user = sign_up(&Endpoints::single(&base), "fuzzer@test.com").await;
    // A ticket to find, and an order of another user's, so identifiers resolve sometimes.
    let seller = sign_up(&Endpoints::single(&base), "seller@test.com").await;
    let ticket = seller
        .sell("fuzzed", serde_json::json!(10))
        .await
        .expect(201);
    let _ = user.order(ticket["id"].as_str().unwrap()).await;
    let cookie = user.cookie.clone();
    let generated = tokio::task::spawn_blocking({
        let base = base.clone();
        move || pass(&base, Some(&cookie)) + pass(&base, None)
    })
    .await
    .unwrap();
    assert!(
        generated >= 2000,
        "only {generated} test cases in two passes of {SECONDS_PER_PASS} s"
    );
}
