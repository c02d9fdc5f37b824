//! The `ticketing` binary as a person runs it: it refuses to start without `JWT_KEY`, says where
//! it listens, and on SIGTERM finishes the requests in flight before exiting cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn ticketing() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ticketing"));
    command
        .env_remove("JWT_KEY")
        .env_remove("NATS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("MONGO_URI")
        .env_remove("BUS")
        .env_remove("STORE")
        .env("RUST_LOG", "warn");
    command
}

#[test]
fn without_jwt_key_it_refuses_to_start_and_says_why() {
    let output = ticketing().env("PORT", "0").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_KEY must be set"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_then_exits_cleanly() {
    let mut child = ticketing()
        .env("JWT_KEY", "binary-test-key")
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(
        line.starts_with("ticketing listening on http://localhost:"),
        "{line}"
    );
    let port: u16 = line
        .split("localhost:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // A sign-up hashes a password (argon2id): slow enough to be in flight when SIGTERM lands.
    let signup = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/users/signup"))
            .json(&serde_json::json!({"email": "inflight@test.com", "password": "password123"}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // Hashing takes hundreds of milliseconds in a debug build: 100 ms in, it is in flight.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    assert_eq!(
        signup
            .await
            .unwrap()
            .expect("the in-flight request was answered"),
        201
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    // Stopped for good: new connections are refused.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
