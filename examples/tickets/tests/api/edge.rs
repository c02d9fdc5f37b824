//! Hostile input at the edge: every rejection in the API's error format, bounded titles, JSON
//! bodies only, security headers, timeouts.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;
use ticketing_common::{CommonArgs, config::HttpArgs};
use ticketing_test_app as kit;
use ticketing_tickets::startup::{Tickets, TicketsState};

use crate::helpers::{error_messages, signin, spawn_app};

#[tokio::test]
async fn titles_are_one_to_two_hundred_printable_characters() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let at_limit = "é".repeat(200);
    let response = app
        .post_ticket(Some(&cookie), &json!({"title": at_limit, "price": 10}))
        .await;
    assert_eq!(response.code(), 201);
    for (title, message) in [
        ("x".repeat(201), "Title must be at most 200 characters"),
        (
            "x".repeat(1_000_000),
            "Title must be at most 200 characters",
        ),
        (
            "nul\u{0}inside".to_owned(),
            "Title must not contain control characters",
        ),
        (
            "new\nline".to_owned(),
            "Title must not contain control characters",
        ),
    ] {
        let response = app
            .post_ticket(Some(&cookie), &json!({"title": title, "price": 10}))
            .await;
        assert_eq!(response.code(), 400, "{message}");
        assert_eq!(
            error_messages(&response),
            vec![(message.to_owned(), Some("title".to_owned()))]
        );
    }
    assert!(
        app.tickets.list_unreserved().await.unwrap().len() == 1,
        "only the valid ticket was stored"
    );
}

#[tokio::test]
async fn an_id_that_is_not_utf8_is_a_404_in_the_error_format() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    for path in [
        "/api/tickets/%FF",
        "/api/tickets/%C3%28",
        "/api/tickets/%00",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.code(), 404, "{path}");
        assert_eq!(
            error_messages(&response),
            vec![("Not Found".into(), None)],
            "{path}"
        );
        let response = app
            .put(path, Some(&cookie), &json!({"title": "t", "price": 1}))
            .await;
        assert_eq!(response.code(), 404, "PUT {path}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_by_its_content_type_is_a_415() {
    let app = spawn_app().await;
    let (cookie, _) = signin(&app.keys);
    let body = r#"{"title": "concert", "price": 10}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .http()
            .post(app.url("/api/tickets"))
            .header("cookie", &cookie)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = app.send(request).await;
        assert_eq!(response.code(), 415, "{content_type:?}");
        assert_eq!(
            error_messages(&response),
            vec![(
                "Content-Type must be application/json (or another JSON type)".into(),
                None
            )]
        );
    }
    for content_type in ["application/json; charset=utf-8", "application/ticket+json"] {
        let response = app
            .send(
                app.http()
                    .post(app.url("/api/tickets"))
                    .header("cookie", &cookie)
                    .header("content-type", content_type)
                    .body(body),
            )
            .await;
        assert_eq!(response.code(), 201, "{content_type}");
    }
    assert!(app.tickets.list_unreserved().await.unwrap().len() == 2);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/api/tickets", "/api/tickets/nope", "/nowhere"] {
        let response = app.get(path).await;
        let header = |name: &str| {
            response
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert!(
            header("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
}

/// The tickets service with short timeouts.
async fn spawn_with_timeouts(http: HttpArgs) -> kit::TestApp {
    let memory = kit::Memory::new().await;
    let state = TicketsState::new(&memory.database, kit::keys(), &memory.bus());
    let options = CommonArgs {
        http,
        ..kit::common()
    };
    kit::spawn_with::<Tickets>(&options, state).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_halfway_is_a_408_and_headers_that_never_end_close_the_connection() {
    let app = spawn_with_timeouts(HttpArgs {
        header_timeout_seconds: 1,
        body_timeout_seconds: 1,
        ..HttpArgs::default()
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let (cookie, _) = {
        let keys = kit::keys();
        kit::signed_in(&keys)
    };
    tokio::task::spawn_blocking(move || {
        // Half a body: the handler waits for the rest until the body timeout.
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        write!(
            stream,
            "POST /api/tickets HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\":"
        )
        .unwrap();
        let mut answer = vec![0; 4096];
        let read = stream.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]).to_string();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("Request timed out"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5));

        // Headers that never end: the connection is closed after the header timeout.
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        write!(stream, "GET /api/tickets HTTP/1.1\r\nHost: x\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "closed after {:?}",
            started.elapsed()
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_request_timeout_is_a_408() {
    // A body that trickles in, a byte at a time, never past the body timeout per read but
    // past the whole request's.
    let app = spawn_with_timeouts(HttpArgs {
        body_timeout_seconds: 1,
        request_timeout_seconds: 1,
        ..HttpArgs::default()
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let (cookie, _) = kit::signed_in(&kit::keys());
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        write!(
            stream,
            "POST /api/tickets HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        .unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        while started.elapsed() < Duration::from_secs(5) {
            let _ = stream.write_all(b" ");
            let mut chunk = [0u8; 4096];
            if let Ok(read) = stream.read(&mut chunk)
                && read > 0
            {
                answer.extend_from_slice(&chunk[..read]);
                break;
            }
        }
        let answer = String::from_utf8_lossy(&answer).to_string();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    })
    .await
    .unwrap();
}
