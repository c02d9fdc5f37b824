use serde_json::{Value, json};

use crate::helpers::{error_messages, signin, spawn_app};

#[tokio::test]
async fn the_list_has_every_unreserved_ticket_newest_first() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    for title in ["a", "b", "c"] {
        app.create_ticket(&cookie, title, json!(20)).await;
    }
    let reserved = app
        .seed_ticket(ticketing_core::Id::new(), Some(ticketing_core::Id::new()))
        .await;
    let response = app.get("/api/tickets").await;
    assert!(response.headers.get("link").is_none(), "one page only");
    let list: Vec<Value> = response.json();
    let titles: Vec<&str> = list.iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["c", "b", "a"]);
    assert!(list.iter().all(|t| t["id"] != reserved.id.to_string()));
}

#[tokio::test]
async fn the_list_is_paged_and_announces_the_next_page() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    for n in 0..105 {
        app.create_ticket(&cookie, &format!("t{n}"), json!(20))
            .await;
    }
    // The default page is 100.
    let response = app.get("/api/tickets").await;
    let link = response.headers["link"].to_str().unwrap().to_owned();
    let page: Vec<Value> = response.json();
    assert_eq!(page.len(), 100);
    assert_eq!(page[0]["title"], "t104");
    assert!(link.ends_with(r#">; rel="next""#), "{link}");
    // Follow the links with a smaller limit until the end.
    let mut seen = page.len();
    let mut next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .replace("limit=100", "limit=2");
    loop {
        let response = app.get(&next).await;
        assert_eq!(response.code(), 200, "{next}");
        let link = response
            .headers
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let page: Vec<Value> = response.json();
        seen += page.len();
        match link {
            Some(link) => {
                next = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned()
            }
            None => break,
        }
    }
    assert_eq!(seen, 105, "every ticket once");
}

#[tokio::test]
async fn a_bad_limit_or_cursor_is_a_400_on_its_field() {
    let app = spawn_app().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("after=nope", "after"),
        (&*format!("after={}", ticketing_core::Id::new()), "after"),
    ] {
        let response = app.get(&format!("/api/tickets?{query}")).await;
        assert_eq!(response.code(), 400, "{query}");
        let errors = error_messages(&response);
        assert_eq!(errors.len(), 1, "{query}: {errors:?}");
        assert_eq!(errors[0].1.as_deref(), Some(field), "{query}");
    }
    let response = app.get("/api/tickets?limit=1000").await;
    assert_eq!(response.code(), 200);
}
