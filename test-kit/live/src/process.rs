//! What tests that start processes share: free ports, waiting for a port to listen, and the
//! directory of the workspace's built binaries.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A port free on loopback now (the OS picks it; another process may take it later, so start
/// the server on it at once). A server restarted on its port takes [`lasting_port`].
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A port free on loopback now and outside the OS's ephemeral range, for a server that is
/// stopped and started again on the same port: a port the OS picked (`free_port`) goes back to
/// the ephemeral pool while its server is down, and another test's server bound to port 0, or
/// any outgoing connection, may take it meanwhile (a crash test once met another test's service
/// on its tickets service's port). Picked at random below that range, so that tests running
/// at once rarely try the same one; one in use is skipped.
pub fn lasting_port() -> u16 {
    use std::hash::BuildHasher;
    static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let floor = low.saturating_sub(10_000).max(10_000);
    if low <= floor {
        return free_port();
    }
    for _ in 0..256 {
        let drawn = DRAWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seed =
            std::collections::hash_map::RandomState::new().hash_one((std::process::id(), drawn));
        let port = floor + u16::try_from(seed % u64::from(low - floor)).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    free_port()
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
        Self::start_on(lasting_port(), store, log).await
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
        signal_and_wait(self.child.take(), signal, Duration::from_secs(10)).await;
    }
}

/// Sends `child` (if there is one) `signal`, and waits for it to exit (`limit` at most).
async fn signal_and_wait(child: Option<tokio::process::Child>, signal: &str, limit: Duration) {
    if let Some(mut child) = child {
        if let Some(pid) = child.id() {
            let _ = tokio::process::Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(limit, child.wait()).await;
    }
}

/// A PostgreSQL server of a test's own (Debian's binaries in `/usr/lib/postgresql/*/bin`), so
/// that a test may crash it and start it again without touching the machine's shared one. Run
/// as root (as `scripts/test` is), it runs as the `postgres` user, as the server refuses root.
pub struct PostgresServer {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    user: Option<(u32, u32)>,
    child: Option<tokio::process::Child>,
}

impl PostgresServer {
    /// Makes a cluster in `dir` (trust authentication, superuser `postgres`) and starts it on a
    /// free port.
    pub async fn start(dir: &Path) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries in /usr/lib/postgresql (scripts/test installs them)")
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("postgres").is_file())
            .max()
            .expect("a PostgreSQL version in /usr/lib/postgresql");
        let user = if is_root() { postgres_user() } else { None };
        std::fs::create_dir_all(dir).expect("the server's directory");
        let data = dir.join("data");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown");
        }
        let mut initdb = tokio::process::Command::new(bin.join("initdb"));
        initdb
            .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let made = initdb.status().await.expect("initdb");
        assert!(made.success(), "initdb failed in {}", data.display());
        let mut server = PostgresServer {
            port: lasting_port(),
            bin,
            log: dir.join("postgres.log"),
            data,
            user,
            child: None,
        };
        server.spawn().await;
        server
    }

    /// Its URL, on database `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let admin = sqlx::PgPool::connect(&self.url())
            .await
            .expect("the test's PostgreSQL");
        let url = crate::create_pg_database(&admin, &self.url(), name).await;
        admin.close().await;
        url
    }

    /// Starts the server (again, after a crash: it recovers from its log), and waits until it
    /// accepts connections.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the server's log");
        if let Some((uid, gid)) = self.user {
            let _ = std::os::unix::fs::chown(&self.log, Some(uid), Some(gid));
        }
        let mut command = tokio::process::Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
            ])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.data.parent().expect("a directory").display()
            ))
            .stdout(std::process::Stdio::from(
                log.try_clone().expect("the server's log"),
            ))
            .stderr(std::process::Stdio::from(log))
            .kill_on_drop(true);
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        self.child = Some(command.spawn().expect("postgres"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let url = self.url();
        loop {
            if let Ok(pool) = sqlx::PgPool::connect(&url).await {
                pool.close().await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "PostgreSQL did not accept connections within 30 s (log: {})",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Crashes it: SIGQUIT, PostgreSQL's immediate shutdown (every backend ends at once,
    /// nothing is flushed; the next start recovers from the write-ahead log, as after a power
    /// loss). Waits for it to exit.
    pub async fn crash(&mut self) {
        self.signal("-QUIT").await;
    }

    /// Stops it (SIGTERM after the test), waiting for it to exit, and removes its data (its log
    /// stays).
    pub async fn stop(&mut self) {
        self.signal("-TERM").await;
        let _ = std::fs::remove_dir_all(&self.data);
    }

    async fn signal(&mut self, signal: &str) {
        signal_and_wait(self.child.take(), signal, Duration::from_secs(30)).await;
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The `postgres` user's uid and gid, from `/etc/passwd`.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let mut fields = line.split(':').skip(2);
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some((uid, gid))
}
