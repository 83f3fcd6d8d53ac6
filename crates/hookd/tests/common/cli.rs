//! The `hookd` binary run as a client (`hookd endpoints ...`) of a started daemon: the
//! connection given by `HOOKD_URL` and `HOOKD_API_KEY` only, a deadline on every run, and what
//! it printed kept for the checks.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::{hookd_bin, Daemon, ADMIN_KEY};

/// A client run takes one request or two; this only stops a hung run from hanging the test.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// How to run the client: its environment.
#[derive(Debug, Clone)]
pub struct Cli {
    env: Vec<(String, String)>,
}

/// What one run did.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Daemon {
    /// A client of this daemon with the admin key.
    pub fn cli(&self) -> Cli {
        Cli::new(&self.url(""), Some(ADMIN_KEY))
    }
}

impl Cli {
    pub fn new(url: &str, key: Option<&str>) -> Cli {
        let mut env = vec![("HOOKD_URL".to_owned(), url.to_owned())];
        if let Some(k) = key {
            env.push(("HOOKD_API_KEY".to_owned(), k.to_owned()));
        }
        Cli { env }
    }

    /// The same client with `HOOKD_API_KEY=key`.
    pub fn with_key(&self, key: &str) -> Cli {
        let mut env: Vec<_> = self
            .env
            .iter()
            .filter(|(k, _)| k != "HOOKD_API_KEY")
            .cloned()
            .collect();
        env.push(("HOOKD_API_KEY".to_owned(), key.to_owned()));
        Cli { env }
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "").await
    }

    /// Runs `hookd <args>` with `stdin` as its standard input.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut cmd = tokio::process::Command::new(hookd_bin());
        cmd.args(args)
            .env_remove("HOOKD_URL")
            .env_remove("HOOKD_API_KEY")
            .env_remove("HOOKD_CA_FILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn hookd as a client");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("hookd {args:?} did not finish within {RUN_TIMEOUT:?}"))
            .unwrap();
        Run {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts exit 0 and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "hookd {:?} failed\n{self}", self.args);
        &self.stdout
    }

    /// Asserts exit 0 and stdout being one JSON document; returns it.
    #[track_caller]
    pub fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(out)
            .unwrap_or_else(|e| panic!("hookd {:?}: stdout is not JSON ({e})\n{self}", self.args))
    }

    /// Asserts the exit code, nothing on stdout, and returns stderr.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(
            self.code,
            Some(code),
            "hookd {:?}: expected exit {code}\n{self}",
            self.args
        );
        assert_eq!(self.stdout, "", "a failed run printed on stdout\n{self}");
        &self.stderr
    }

    /// The value of the `label  value` line of a field list on stdout.
    #[track_caller]
    pub fn field(&self, label: &str) -> String {
        self.stdout
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix(label)?;
                (rest.starts_with("  ")).then(|| rest.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no `{label}` line in the output of {:?}\n{self}", self.args))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit: {:?}\n---- stdout ----\n{}---- stderr ----\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}
