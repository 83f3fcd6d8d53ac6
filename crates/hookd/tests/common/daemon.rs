//! A started daemon (process, address, API client) and `setup`, the usual start of a test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Api, Config, Proc, Receiver};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A started daemon: the process, its address and an API client for it.
pub struct Daemon {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub api: Api,
    pub config_path: PathBuf,
}

impl Daemon {
    /// Writes `cfg` into `dir` and starts hookd on it.
    pub async fn start(dir: &Path, cfg: &Config) -> Daemon {
        let path = cfg.write(dir);
        Self::start_path(&path, &[]).await
    }

    /// Starts hookd on an existing config file with extra environment variables and waits for
    /// `listening on http://ADDR` on stdout.
    pub async fn start_path(config_path: &Path, env: &[(&str, &str)]) -> Daemon {
        Self::start_wrapped(&[], config_path, env).await
    }

    /// [`Daemon::start_path`] under `wrapper` (see [`Proc::spawn_wrapped`]).
    pub async fn start_wrapped(
        wrapper: &[String],
        config_path: &Path,
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut proc = Proc::spawn_wrapped(wrapper, config_path, env);
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let found = proc.stdout_lines().iter().find_map(|l| {
                l.trim()
                    .strip_prefix("listening on http://")
                    .map(|a| a.trim().to_string())
            });
            if let Some(a) = found {
                let addr: SocketAddr = a
                    .parse()
                    .unwrap_or_else(|e| panic!("bad listening address {a:?}: {e}"));
                break addr;
            }
            if let Some(st) = proc.try_exit() {
                // Give the reader threads a moment to collect the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!(
                    "hookd exited ({st}) before printing `listening on http://...`\n{}",
                    proc.dump_logs()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "hookd did not print `listening on http://...` within {START_TIMEOUT:?}\n{}",
                    proc.dump_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Daemon {
            proc,
            addr,
            api: Api::new(&format!("http://{addr}")),
            config_path: config_path.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A fresh temp dir, a receiver and a daemon started with `cfg(Config::new(dir))`.
pub async fn setup(cfg: impl FnOnce(Config) -> Config) -> (TempDir, Receiver, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let config = cfg(Config::new(dir.path()));
    let daemon = Daemon::start(dir.path(), &config).await;
    (dir, receiver, daemon)
}
