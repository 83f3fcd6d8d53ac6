//! A hookd this tool starts and kills itself (the `memory` mode): a fresh data directory, a free
//! loopback port, loopback targets allowed, an admin key made up for the run. Its stdout and
//! stderr go to `<data-dir>.log`. Dropping it kills it; so does the `--max-seconds` watchdog
//! (through [`kill_spawned`]), which ends the process without running drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::time::Instant;

use crate::client::{self, HttpClient, Outcome, Target};

/// The pid of the daemon this process started and has not killed yet, 0 if none.
static SPAWNED: AtomicU32 = AtomicU32::new(0);

/// SIGKILLs the daemon this process started, if one runs: for the watchdog's exit.
pub fn kill_spawned() {
    let pid = SPAWNED.swap(0, Ordering::SeqCst);
    if pid != 0 {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// How to start the daemon.
#[derive(Debug, Clone)]
pub struct Spec {
    pub bin: PathBuf,
    pub config: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub key: String,
    pub port: u16,
}

impl Spec {
    pub fn new(bin: &Path, config: Option<&Path>, data_dir: &Path) -> Result<Spec> {
        if !bin.is_file() {
            bail!(
                "{}: no hookd binary (cargo build --release -p hookd)",
                bin.display()
            );
        }
        // A port that was free a moment ago; the daemon binds it (and binds it again on
        // restart).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        Ok(Spec {
            bin: bin.to_path_buf(),
            config: config.map(Path::to_path_buf),
            data_dir: data_dir.to_path_buf(),
            key: format!(
                "lt-admin-{:x}-{}",
                crate::meter::unix_us(),
                std::process::id()
            ),
            port,
        })
    }

    pub fn target(&self) -> Target {
        Target {
            base: format!("http://127.0.0.1:{}", self.port),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        let mut p = self.data_dir.clone().into_os_string();
        p.push(".log");
        PathBuf::from(p)
    }
}

/// A running daemon. Dropping it kills it.
pub struct Daemon {
    child: Child,
    pub pid: u32,
}

impl Daemon {
    pub fn spawn(spec: &Spec) -> Result<Daemon> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spec.log_path())
            .with_context(|| format!("opening {}", spec.log_path().display()))?;
        let mut cmd = Command::new(&spec.bin);
        if let Some(c) = &spec.config {
            cmd.arg("--config").arg(c);
        }
        cmd.env("HOOKD_DATA_DIR", &spec.data_dir)
            .env("HOOKD_LISTEN", format!("127.0.0.1:{}", spec.port))
            .env("HOOKD_ADMIN_KEY", &spec.key)
            .env("HOOKD_ALLOW_PRIVATE_TARGETS", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", spec.bin.display()))?;
        SPAWNED.store(child.id(), Ordering::SeqCst);
        Ok(Daemon {
            pid: child.id(),
            child,
        })
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) -> Result<()> {
        let _ = SPAWNED.compare_exchange(self.pid, 0, Ordering::SeqCst, Ordering::SeqCst);
        self.child.kill().context("killing hookd")?;
        self.child.wait().context("waiting for hookd")?;
        Ok(())
    }

    /// Whether it has exited (and how), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// Waits until `GET /health` answers 200; how long that took.
pub async fn wait_healthy(
    client: &HttpClient,
    target: &Target,
    daemon: &mut Daemon,
    deadline: Instant,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let req = client::request(
            hyper::Method::GET,
            &target.base,
            "/health",
            None,
            bytes::Bytes::new(),
        );
        let short = (Instant::now() + Duration::from_secs(2)).min(deadline);
        if let Outcome::Response(200, _) = client::send(client, req, short).await {
            return Ok(start.elapsed());
        }
        if let Some(status) = daemon.exited() {
            bail!("hookd exited ({status}) before /health answered");
        }
        if Instant::now() >= deadline {
            bail!("/health did not answer before the deadline");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
