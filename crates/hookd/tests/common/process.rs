//! A `hookd` child process whose stdout and stderr are kept (the last lines) for failure
//! messages, with signals and exit waits that have deadlines.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEEP_LOG_LINES: usize = 300;

pub fn hookd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hookd")
}

#[derive(Debug, Default)]
struct Logs {
    stdout: VecDeque<String>,
    stderr: VecDeque<String>,
    stdout_closed: bool,
    stderr_closed: bool,
}

fn push_line(q: &mut VecDeque<String>, line: String) {
    if q.len() >= KEEP_LOG_LINES {
        q.pop_front();
    }
    q.push_back(line);
}

/// A running `hookd` process whose stdout and stderr are drained by background threads.
pub struct Proc {
    child: Child,
    logs: Arc<Mutex<Logs>>,
    exit: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(config_path: &Path, env: &[(&str, &str)]) -> Proc {
        Self::spawn_wrapped(&[], config_path, env)
    }

    /// Starts hookd under `wrapper` (a command and its arguments, such as a tracer), or directly
    /// when it is empty.
    pub fn spawn_wrapped(wrapper: &[String], config_path: &Path, env: &[(&str, &str)]) -> Proc {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(hookd_bin());
                c
            }
            None => Command::new(hookd_bin()),
        };
        cmd.arg("--config")
            .arg(config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("HOOKD_LISTEN")
            .env_remove("HOOKD_DATA_DIR")
            .env_remove("HOOKD_ADMIN_KEY")
            .env_remove("HOOKD_ALLOW_PRIVATE_TARGETS")
            .env_remove("HOOKD_SHARDS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", hookd_bin()));
        let logs = Arc::new(Mutex::new(Logs::default()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    push_line(&mut logs.lock().unwrap().stdout, line);
                }
                logs.lock().unwrap().stdout_closed = true;
            });
        }
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    push_line(&mut logs.lock().unwrap().stderr, line);
                }
                logs.lock().unwrap().stderr_closed = true;
            });
        }
        Proc {
            child,
            logs,
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().stdout.iter().cloned().collect()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().stderr.iter().cloned().collect()
    }

    /// Both pipes reached end of file (the process and anything it spawned closed them).
    pub fn pipes_closed(&self) -> bool {
        let l = self.logs.lock().unwrap();
        l.stdout_closed && l.stderr_closed
    }

    pub fn dump_logs(&self) -> String {
        let l = self.logs.lock().unwrap();
        let mut s = String::from("---- hookd stdout (last lines) ----\n");
        for line in &l.stdout {
            s.push_str(line);
            s.push('\n');
        }
        s.push_str("---- hookd stderr (last lines) ----\n");
        for line in &l.stderr {
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().unwrap();
        }
        self.exit
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit and for both pipes to be drained (so `stderr_lines` is
    /// complete), failing the test after `timeout`.
    pub async fn expect_exit(&mut self, timeout: Duration) -> ExitStatus {
        let st = match self.wait_exit(timeout).await {
            Some(st) => st,
            None => panic!(
                "hookd did not exit within {timeout:?}\n{}",
                self.dump_logs()
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.pipes_closed() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        st
    }

    pub fn sigterm(&self) {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(st.success(), "kill -TERM {} failed: {st}", self.pid());
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.exit = Some(self.child.wait().unwrap());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.dump_logs());
        }
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
