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
    let (mut child, port) = started(&[]).await;

    // Sign-ups hash passwords (argon2id): eight at once keep the server busy for a while. Each
    // client first opens its connection with a request the server answers, so the sign-up goes
    // out on a connection the server has accepted: a connection still in the kernel's backlog at
    // the signal is refused, as it should be (the shutdown delay is what covers those).
    let mut clients = Vec::new();
    for _ in 0..8 {
        let client = reqwest::Client::new();
        let warm = client
            .get(format!("http://127.0.0.1:{port}/api/users/currentuser"))
            .send()
            .await
            .unwrap();
        assert_eq!(warm.status(), 200);
        clients.push(client);
    }
    let signups: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, client)| {
            tokio::spawn(async move {
                let status = client
                    .post(format!("http://127.0.0.1:{port}/api/users/signup"))
                    .json(&serde_json::json!({"email": format!("inflight{n}@test.com"), "password": "password123"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                (status, std::time::Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(25)).await;
    let signalled = std::time::Instant::now();
    terminate(&child);

    let mut answered_after_signal = 0;
    for signup in signups {
        let (status, at) = signup.await.unwrap();
        assert_eq!(status.expect("an in-flight request was dropped"), 201);
        if at > signalled {
            answered_after_signal += 1;
        }
    }
    assert!(
        answered_after_signal > 0,
        "no request was in flight at the signal: the test proves nothing"
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    // Stopped for good: new connections are refused.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_short_jwt_key_is_refused_at_start_up_and_never_printed() {
    let output = ticketing()
        .env("JWT_KEY", "asdf")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(!stderr.contains("asdf"), "{stderr}");
}

#[test]
fn credentials_in_backend_urls_are_never_printed() {
    // Nothing listens on port 1: each backend fails to connect, and says so.
    for (variable, url) in [
        ("NATS_URL", "nats://ticketing:hunter2@127.0.0.1:1"),
        ("NATS_URL", "nats://s3cr3ttoken@127.0.0.1:1"),
        (
            "DATABASE_URL",
            "postgres://ticketing:hunter2@127.0.0.1:1/db",
        ),
        (
            "MONGO_URI",
            "mongodb://ticketing:hunter2@127.0.0.1:1/db?serverSelectionTimeoutMS=200",
        ),
    ] {
        let output = ticketing()
            .env("JWT_KEY", "binary-test-key-of-at-least-32-bytes")
            .env("PORT", "0")
            .env("RUST_LOG", "debug")
            // Retried for a second: the warnings of each try must not leak either.
            .env("STARTUP_TIMEOUT_SECONDS", "1")
            .env(variable, url)
            .output()
            .unwrap();
        assert!(
            !output.status.success(),
            "{variable} with nothing listening"
        );
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(printed.contains("127.0.0.1:1"), "{variable}: {printed}");
        for secret in ["hunter2", "s3cr3ttoken"] {
            assert!(!printed.contains(secret), "{variable} leaked: {printed}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_holding_a_connection_open_does_not_hold_up_shutdown_past_the_deadline() {
    let (mut child, port) = started(&[
        ("BODY_TIMEOUT_SECONDS", "600"),
        ("REQUEST_TIMEOUT_SECONDS", "600"),
        ("SHUTDOWN_DEADLINE_SECONDS", "1"),
    ])
    .await;
    // Headers and half a body, then silence: a patient client.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"POST /api/users/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"email\":",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = std::time::Instant::now();
    terminate(&child);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(8),
        "stopped {took:?} after SIGTERM with a 1 s deadline"
    );
    drop(stream);
}

/// Sends SIGTERM to `child`.
fn terminate(child: &std::process::Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// Starts the binary with `env` on a free port; the child and its port. It must say where it
/// listens first, as `ticketing listening on http://localhost:PORT`.
async fn started(env: &[(&str, &str)]) -> (std::process::Child, u16) {
    let mut command = ticketing();
    command
        .env("JWT_KEY", "binary-test-key-of-at-least-32-bytes")
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .stdout(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
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
    let port = line
        .split("localhost:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_it_is_first_not_ready_then_stops_after_the_shutdown_delay() {
    let (mut child, port) = started(&[("SHUTDOWN_DELAY_SECONDS", "2")]).await;
    let get = |path: &'static str| async move {
        reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .map(|r| r.status().as_u16())
    };
    let ready: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    for database in ["auth", "tickets", "orders", "payments"] {
        assert_eq!(
            ready["checks"][format!("database:{database}")],
            "ok",
            "{ready}"
        );
    }
    assert_eq!(get("/healthz").await.unwrap(), 200);
    assert_eq!(get("/metrics").await.unwrap(), 200);

    let signalled = std::time::Instant::now();
    terminate(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still serving, but telling the orchestrator to send nothing more.
    assert_eq!(get("/readyz").await.unwrap(), 503);
    assert_eq!(get("/healthz").await.unwrap(), 200);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "stopped before the delay: {:?}",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_before_the_broker_it_waits_for_it_within_the_startup_timeout() {
    let port = ticketing_test_live::process::lasting_port();
    let store = std::env::temp_dir().join(format!("ticketing-startup-{}", std::process::id()));
    let mut child = ticketing()
        .env("JWT_KEY", "binary-test-key-of-at-least-32-bytes")
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("NATS_URL", format!("nats://127.0.0.1:{port}"))
        .env("NATS_STREAM", "STARTUP")
        .env("STARTUP_TIMEOUT_SECONDS", "30")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The logs say it waits; then it says where it listens.
    let line = tokio::task::spawn_blocking(move || {
        let mut waited = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            waited |= line.contains("waiting for the broker");
            if line.starts_with("ticketing listening on") {
                return (waited, line);
            }
        }
        (waited, String::new())
    });
    // The broker comes up two seconds later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(child.try_wait().unwrap().is_none(), "it gave up at once");
    let broker = ticketing_test_live::process::NatsServer::start_on(port, &store, None).await;
    let (waited, line) = tokio::time::timeout(Duration::from_secs(30), line)
        .await
        .expect("it starts once the broker answers")
        .unwrap();
    assert!(line.starts_with("ticketing listening on"), "{line}");
    assert!(waited, "it said it was waiting for the broker");
    let _ = child.kill();
    let _ = child.wait();
    drop(broker);
    let _ = std::fs::remove_dir_all(&store);
}
