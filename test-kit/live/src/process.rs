//! What tests that start processes share: free ports, waiting for a port to listen, and the
//! directory of the workspace's built binaries.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A port free on loopback now (the OS picks it; another process may take it later, so start
/// the server on it at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Whether something listens on `port` of loopback.
pub async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// Waits until something listens on `port`; panics naming `what` after `limit`.
pub async fn wait_for_port(port: u16, what: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while !port_open(port).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen on port {port} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The directory of the workspace's built binaries: `target/<profile>`, next to the `deps/`
/// the running test is in. Panics, saying how to build them, when one of `required` is missing.
pub fn bin_dir(required: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf();
    for bin in required {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: build the binaries first (cargo build --bins, or run the whole \
             workspace's tests)",
            dir.join(bin).display()
        );
    }
    dir
}

/// A nats-server with JetStream of a test's own, on a loopback port and a store directory of
/// its own; restarted on the same port and store with [`spawn`](Self::spawn). Killed when
/// dropped.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    store: PathBuf,
    log: Option<PathBuf>,
    child: Option<tokio::process::Child>,
}

impl NatsServer {
    /// Starts one on a free port, its store in `store`, its output appended to `log` (or
    /// dropped), and waits until it listens.
    pub async fn start(store: &Path, log: Option<&Path>) -> Self {
        Self::start_on(free_port(), store, log).await
    }

    /// [`start`](Self::start) on `port`.
    pub async fn start_on(port: u16, store: &Path, log: Option<&Path>) -> Self {
        let mut server = NatsServer {
            port,
            store: store.to_path_buf(),
            log: log.map(Path::to_path_buf),
            child: None,
        };
        server.spawn().await;
        server
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, after a stop), and waits until it listens.
    pub async fn spawn(&mut self) {
        let (stdout, stderr) = match &self.log {
            Some(path) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("the server's log");
                (
                    std::process::Stdio::from(log.try_clone().expect("the server's log")),
                    std::process::Stdio::from(log),
                )
            }
            None => (std::process::Stdio::null(), std::process::Stdio::null()),
        };
        let child = tokio::process::Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server must be on PATH (scripts/test installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "nats-server", Duration::from_secs(15)).await;
    }

    /// Stops it as an operator does (SIGTERM), and waits for it to exit.
    pub async fn stop(&mut self) {
        self.stop_with("-TERM").await;
    }

    /// Sends it `signal` (`-TERM`, `-KILL`), and waits for it to exit.
    pub async fn stop_with(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = tokio::process::Command::new("kill")
                    .args([signal, &pid.to_string()])
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}
