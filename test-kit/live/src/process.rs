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

/// As [`wait_for_port`], blocking the thread (for tests without a runtime).
pub fn wait_for_port_blocking(port: u16, what: &str, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on port {port} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
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
