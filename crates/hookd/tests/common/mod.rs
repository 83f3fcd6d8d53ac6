//! Shared harness for hookd's end-to-end tests: it runs the real `hookd` binary against a real
//! HTTP receiver and talks to the daemon over HTTP, exactly as `docs/API.md` describes.
//!
//! Every wait in here has a deadline: a test fails with the daemon's last log lines instead of
//! hanging.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
const START_TIMEOUT: Duration = Duration::from_secs(20);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const KEEP_LOG_LINES: usize = 300;

pub fn hookd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hookd")
}

pub fn verify_script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/verify_standardwebhooks.py"
    ))
}

/// Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// A hookd TOML config: sections of `key = <raw TOML value>`. `""` is the top level.
#[derive(Debug, Clone)]
pub struct Config {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Config {
    /// The test defaults of the harness contract, with `data_dir` at `<dir>/data`.
    pub fn new(dir: &Path) -> Self {
        let data_dir = dir.join("data");
        let mut cfg = Config {
            sections: Vec::new(),
        };
        cfg = cfg
            .set("", "listen", "\"127.0.0.1:0\"")
            .set("", "data_dir", &toml_str(&data_dir.to_string_lossy()))
            .set("auth", "admin_key", &toml_str(ADMIN_KEY))
            .set("sender", "allow_private_targets", "true")
            .set("sender", "timeout", "\"2s\"")
            .set("retry", "schedule", "[\"200ms\", \"400ms\"]")
            .set("retry", "jitter", "0.0");
        cfg
    }

    /// Sets (or replaces) `key` in `[section]` to the raw TOML `value`.
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Self {
        let idx = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let entries = &mut self.sections[idx].1;
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value.to_string(),
            None => entries.push((key.to_string(), value.to_string())),
        }
        self
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // The top level has to come before any [section].
        for (section, entries) in self.sections.iter().filter(|(s, _)| s.is_empty()) {
            let _ = section;
            for (k, v) in entries {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        for (section, entries) in self.sections.iter().filter(|(s, _)| !s.is_empty()) {
            out.push_str(&format!("\n[{section}]\n"));
            for (k, v) in entries {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        out
    }

    /// Writes the config to `<dir>/hookd.toml` and returns the path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("hookd.toml");
        std::fs::write(&path, self.render()).unwrap();
        path
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Process handling
// ---------------------------------------------------------------------------------------------

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
        let mut cmd = Command::new(hookd_bin());
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
        let mut proc = Proc::spawn(config_path, env);
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

// ---------------------------------------------------------------------------------------------
// API client
// ---------------------------------------------------------------------------------------------

/// A response from the daemon.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body parsed as JSON, `Value::Null` when empty, `Value::String(text)` when not JSON.
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<non-ascii>").to_string())
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "expected HTTP {status}, got {} with body {}",
            self.status, self.text
        );
        &self.body
    }

    /// Asserts `{"error": {"code": code, "message": "<non-empty>"}}` with `status`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "expected HTTP {status} {code}, got {} with body {}",
            self.status, self.text
        );
        assert_error_shape(&self.body, code, &self.text);
    }
}

#[track_caller]
pub fn assert_error_shape(body: &Value, code: &str, text: &str) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {text:?}"));
    assert_eq!(
        obj.len(),
        1,
        "error body must be exactly {{\"error\": {{...}}}}, got {text}"
    );
    let err = obj
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("error body has no `error` object: {text}"));
    assert_eq!(
        err.get("code").and_then(Value::as_str),
        Some(code),
        "wrong error code in {text}"
    );
    let msg = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error has no string `message`: {text}"));
    assert!(!msg.is_empty(), "error message is empty: {text}");
    for k in err.keys() {
        assert!(
            k == "code" || k == "message",
            "unexpected key {k:?} in error object: {text}"
        );
    }
}

/// A small HTTP/1 client for the daemon API. Sends `Authorization: Bearer <ADMIN_KEY>` unless
/// told otherwise.
#[derive(Clone)]
pub struct Api {
    base: String,
    authorization: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build_http();
        Api {
            base: base.trim_end_matches('/').to_string(),
            authorization: Some(format!("Bearer {ADMIN_KEY}")),
            client,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same client without an `Authorization` header.
    pub fn without_key(&self) -> Api {
        Api {
            authorization: None,
            ..self.clone()
        }
    }

    /// The same client sending `Authorization: <value>` verbatim.
    pub fn with_authorization(&self, value: &str) -> Api {
        Api {
            authorization: Some(value.to_string()),
            ..self.clone()
        }
    }

    /// The same client with bearer `key`.
    pub fn with_key(&self, key: &str) -> Api {
        self.with_authorization(&format!("Bearer {key}"))
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let uri = format!("{}{}", self.base, path);
        let mut req = Request::builder().method(method.clone()).uri(&uri);
        if let Some(auth) = &self.authorization {
            req = req.header("authorization", auth);
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .map_err(|e| format!("build request {method} {uri}: {e}"))?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{method} {uri}: {e:?}"))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{method} {uri}: reading body: {e}"))?
                .to_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text.clone()))
            };
            Ok(Resp {
                status,
                headers,
                body,
                text,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{method} {uri}: no answer within {REQUEST_TIMEOUT:?}"
            )),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        match self.try_send(method, path, body, headers).await {
            Ok(r) => r,
            Err(e) => panic!("request failed: {e}"),
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).unwrap();
        self.send(Method::POST, path, Some(&b), &[]).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).unwrap();
        self.send(Method::PATCH, path, Some(&b), &[]).await
    }

    /// POST a raw body (sent byte for byte) with extra headers.
    pub async fn post_raw(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::POST, path, Some(body.as_bytes()), headers)
            .await
    }

    // ----- typed helpers -----

    /// POST /v1/endpoints, expecting 201; returns (endpoint id, secret, body).
    pub async fn create_endpoint(&self, body: Value) -> (String, String, Value) {
        let r = self.post("/v1/endpoints", &body).await;
        let v = r.expect(201).clone();
        let id = v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("endpoint without id: {}", r.text))
            .to_string();
        let secret = v["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("created endpoint without secret: {}", r.text))
            .to_string();
        (id, secret, v)
    }

    /// POST /v1/events, expecting 202; returns the event.
    pub async fn post_event(&self, body: Value) -> Value {
        let r = self.post("/v1/events", &body).await;
        r.expect(202).clone()
    }

    pub async fn event(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/events/{id}")).await;
        r.expect(200).clone()
    }

    pub async fn delivery(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/deliveries/{id}")).await;
        r.expect(200).clone()
    }

    /// Polls `GET /v1/events/{event_id}` until it lists `n` deliveries; returns them.
    pub async fn wait_event_deliveries(
        &self,
        event_id: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self.event(event_id).await;
            let ds = ev["deliveries"].as_array().cloned().unwrap_or_default();
            if ds.len() >= n {
                return ds;
            }
            if Instant::now() >= deadline {
                panic!("event {event_id} has not {n} deliveries after {timeout:?}: {ev}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `GET /v1/deliveries/{id}` until its status is `status`; returns it.
    pub async fn wait_delivery_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.delivery(id).await;
            if d["status"] == status {
                return d;
            }
            if Instant::now() >= deadline {
                panic!("delivery {id} is not {status} after {timeout:?}: {d}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Receiver
// ---------------------------------------------------------------------------------------------

/// How the receiver answers requests to one path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Always this status.
    Status(u16),
    /// `fails` answers of `fail_status` (body `fail <n>`), then `ok_status` (body `ok`).
    FailThenOk {
        fails: usize,
        fail_status: u16,
        ok_status: u16,
    },
    /// Waits `delay`, then answers `status`.
    Slow { delay: Duration, status: u16 },
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lowercase names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
    pub at: Instant,
    /// 1-based number of this request among the requests to its path.
    pub nth: usize,
    /// The status the receiver decided to answer.
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id").unwrap_or("")
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Default)]
struct RecvState {
    requests: Vec<Recorded>,
    scripts: HashMap<String, Reply>,
    hits: HashMap<String, usize>,
}

/// A real HTTP receiver on 127.0.0.1:0 that records every request. Paths without a script
/// answer 204.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<RecvState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(RecvState::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sets how `path` is answered from now on (the per-path request count keeps going).
    pub fn script(&self, path: &str, reply: Reply) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(path.to_string(), reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    /// Waits until `pred(all requests)` holds; panics after `timeout`.
    pub async fn wait_until<F>(&self, what: &str, timeout: Duration, pred: F) -> Vec<Recorded>
    where
        F: Fn(&[Recorded]) -> bool,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let reqs = self.requests();
            if pred(&reqs) {
                return reqs;
            }
            if Instant::now() >= deadline {
                panic!(
                    "receiver: timed out after {timeout:?} waiting for {what}; got {} requests:\n{}",
                    reqs.len(),
                    describe(&reqs)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for at least `n` requests in all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        self.wait_until(&format!("{n} requests"), timeout, |r| r.len() >= n)
            .await
    }

    /// Waits for at least `n` requests to `path`; returns those.
    pub async fn wait_for_path(&self, path: &str, n: usize, timeout: Duration) -> Vec<Recorded> {
        self.wait_until(&format!("{n} requests to {path}"), timeout, |r| {
            r.iter().filter(|x| x.path == path).count() >= n
        })
        .await;
        self.requests_to(path)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn describe(reqs: &[Recorded]) -> String {
    reqs.iter()
        .map(|r| {
            format!(
                "  {} {} webhook-id={:?} -> {} body={}",
                r.method,
                r.path,
                r.webhook_id(),
                r.status,
                String::from_utf8_lossy(&r.body)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn handle(
    state: Arc<Mutex<RecvState>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let at = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers
            .entry(k.as_str().to_ascii_lowercase())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let body = req.into_body().collect().await?.to_bytes();

    let (status, delay, text) = {
        let mut st = state.lock().unwrap();
        let nth = {
            let h = st.hits.entry(path.clone()).or_insert(0);
            *h += 1;
            *h
        };
        let reply = st.scripts.get(&path).cloned().unwrap_or(Reply::Status(204));
        let (status, delay, text) = match reply {
            Reply::Status(s) => (s, Duration::ZERO, format!("status {s}")),
            Reply::FailThenOk {
                fails,
                fail_status,
                ok_status,
            } => {
                if nth <= fails {
                    (fail_status, Duration::ZERO, format!("fail {nth}"))
                } else {
                    (ok_status, Duration::ZERO, "ok".to_string())
                }
            }
            Reply::Slow { delay, status } => (status, delay, "slow".to_string()),
        };
        st.requests.push(Recorded {
            method,
            path,
            query,
            headers,
            body,
            at,
            nth,
            status,
        });
        (status, delay, text)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = if status == 204 || status == 304 {
        Bytes::new()
    } else {
        Bytes::from(text)
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    resp.headers_mut().insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("text/plain"),
    );
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------

/// The HMAC key of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Vec<u8> {
    let b64 = secret
        .strip_prefix("whsec_")
        .unwrap_or_else(|| panic!("secret does not start with whsec_: {secret:?}"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("secret is not whsec_+base64 ({e}): {secret:?}"))
}

/// Checks the Standard Webhooks headers of `req` against `secret` in Rust (ring HMAC).
#[track_caller]
pub fn assert_signed(req: &Recorded, secret: &str) {
    let id = req.header("webhook-id").expect("webhook-id header");
    let ts = req
        .header("webhook-timestamp")
        .expect("webhook-timestamp header");
    let ts_num: u64 = ts
        .parse()
        .unwrap_or_else(|_| panic!("webhook-timestamp is not unix seconds: {ts:?}"));
    let now = unix_now();
    assert!(
        ts_num + 60 >= now && ts_num <= now + 60,
        "webhook-timestamp {ts_num} is far from now {now}"
    );
    let sigs = req
        .header("webhook-signature")
        .expect("webhook-signature header");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret_key(secret));
    let mut msg = format!("{id}.{ts}.").into_bytes();
    msg.extend_from_slice(&req.body);
    let expected =
        base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, &msg).as_ref());
    let ok = sigs
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()));
    assert!(
        ok,
        "webhook-signature {sigs:?} does not contain v1,{expected} (id {id}, ts {ts})"
    );
}

/// Verifies every `(secret, request)` with the public `standardwebhooks` Python library
/// through `scripts/verify_standardwebhooks.py`.
pub fn verify_with_python(items: &[(&str, &Recorded)]) {
    let input: Vec<Value> = items
        .iter()
        .map(|(secret, r)| {
            json!({
                "secret": secret,
                "headers": r.headers,
                "body": r.body_str(),
            })
        })
        .collect();
    let input = serde_json::to_vec(&input).unwrap();
    let script = verify_script();
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&input).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("{} did not finish within 30 s", script.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "standardwebhooks verification failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(
        stdout.trim(),
        format!("ok {}", items.len()),
        "unexpected verifier output; stderr: {stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// Misc
// ---------------------------------------------------------------------------------------------

/// `2026-05-08T17:01:30.123Z`.
#[track_caller]
pub fn assert_rfc3339_ms(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let b = s.as_bytes();
    let ok = b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit());
    assert!(ok, "not an RFC 3339 UTC timestamp with milliseconds: {s:?}");
}

/// A fresh temp dir, a receiver and a daemon started with `cfg(Config::new(dir))`.
pub async fn setup(cfg: impl FnOnce(Config) -> Config) -> (TempDir, Receiver, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let config = cfg(Config::new(dir.path()));
    let daemon = Daemon::start(dir.path(), &config).await;
    (dir, receiver, daemon)
}

/// Sleeps, so a test can make sure nothing more arrives.
pub async fn settle(d: Duration) {
    tokio::time::sleep(d).await;
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

pub mod checks;
#[allow(unused_imports)] // not every test binary uses every check
pub use checks::*;
pub mod crash;
pub mod raw;
pub mod verifiers;
