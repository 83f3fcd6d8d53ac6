//! Checks that cannot pass by luck: conditions read from the daemon itself (its `/metrics` and
//! API) to wait on instead of sleeping, and signature checks that must fail.
//!
//! "Nothing was delivered" is only asserted once the daemon proves it had its chance: fan-out
//! counted the events ([`wait_fanned_out`]), and, where a request could still be on its way, a
//! later sentinel delivery to the same receiver arrived ([`deliver_sentinel`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{verify_script, Api, Receiver, Recorded};

/// How long a wait may last before the test fails: generous, for a loaded 2-core VM with CPU
/// steal. Waits end as soon as their condition holds, so this costs nothing when all is well.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `condition` every 20 ms until it returns `Ok`; after `timeout`, fails the test naming
/// `what` and the last `Err` (a description of what was seen instead).
pub async fn wait_for<T, F, Fut>(mut condition: F, what: &str, timeout: Duration) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match condition().await {
            Ok(v) => return v,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

pub const FANNED_OUT: &str = "hookd_events_fanned_out_total";

/// One reading of `GET /metrics`: every sample, keyed by its name with labels as exposed
/// (`hookd_attempt_outcomes_total{outcome="success"}`).
#[derive(Debug, Clone)]
pub struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    /// The value of `name` (e.g. `hookd_attempts_total`), a whole number; fails the test if it
    /// is not exposed or not whole.
    #[track_caller]
    pub fn get(&self, name: &str) -> u64 {
        let v = self.get_f64(name);
        assert!(
            v >= 0.0 && v.fract() == 0.0,
            "metric {name} is not a whole number: {v}"
        );
        v as u64
    }

    /// The value of `name`, e.g. a histogram's `_sum` in seconds.
    #[track_caller]
    pub fn get_f64(&self, name: &str) -> f64 {
        *self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("/metrics has no {name}: {self:?}"))
    }
}

/// Reads `GET /metrics` (open, no key) into sample -> value.
pub async fn metrics(api: &Api) -> Metrics {
    let r = api.without_key().get("/metrics").await;
    r.expect(200);
    let mut out = BTreeMap::new();
    for line in r
        .text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a `name value` metrics line: {line:?}"));
        let value = value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("metric {name} is not a number: {line:?}"));
        out.insert(name.to_owned(), value);
    }
    Metrics(out)
}

/// Waits until `/metrics` satisfies `pred`; returns that reading.
pub async fn wait_metrics(api: &Api, what: &str, pred: impl Fn(&Metrics) -> bool) -> Metrics {
    let pred = &pred;
    wait_for(
        || async move {
            let m = metrics(api).await;
            if pred(&m) {
                Ok(m)
            } else {
                Err(format!("{m:?}"))
            }
        },
        what,
        PATIENCE,
    )
    .await
}

/// Waits until fan-out has committed exactly `n` events since the daemon started: every
/// delivery of those events is stored and scheduled. More than `n` fails the test (an event the
/// test did not expect to be stored was stored).
pub async fn wait_fanned_out(api: &Api, n: u64) -> Metrics {
    let m = wait_metrics(api, &format!("fan-out of {n} events"), |m| {
        m.get(FANNED_OUT) >= n
    })
    .await;
    assert_eq!(
        m.get(FANNED_OUT),
        n,
        "fan-out committed more events than the test stored: {m:?}"
    );
    m
}

/// Waits until the daemon has finished exactly `n` attempts since it started and has none in
/// flight; more than `n` fails the test.
pub async fn wait_attempts(api: &Api, n: u64) -> Metrics {
    let m = wait_metrics(
        api,
        &format!("{n} finished attempts, none in flight"),
        |m| m.get("hookd_attempts_total") >= n && m.get("hookd_deliveries_in_flight") == 0,
    )
    .await;
    assert_eq!(
        m.get("hookd_attempts_total"),
        n,
        "the daemon made more attempts than expected: {m:?}"
    );
    m
}

/// Posts `event` (with an `"id"`, matching an endpoint whose URL is `path` on `rx`) and waits
/// until `rx` got it there. Fan-out and the shards take work in order, so whatever was fanned
/// out and due before it for that endpoint has had its turn.
pub async fn deliver_sentinel(api: &Api, rx: &Receiver, path: &str, event: Value) {
    let id = event["id"]
        .as_str()
        .expect("a sentinel event needs an id")
        .to_owned();
    api.post_event(event).await;
    rx.wait_until(&format!("sentinel {id} at {path}"), PATIENCE, |r| {
        r.iter().any(|x| x.path == path && x.webhook_id() == id)
    })
    .await;
}

/// Waits until every delivery of endpoint `ep` is delivered or dead-lettered and no request is
/// in flight; returns the deliveries. From then on no attempt can be due for that endpoint.
pub async fn wait_endpoint_settled(api: &Api, ep: &str) -> Vec<Value> {
    let path = format!("/v1/endpoints/{ep}/deliveries?limit=500");
    let ds = wait_for(
        || async {
            let v = api.get(&path).await.expect(200).clone();
            let ds = v["data"].as_array().cloned().unwrap_or_default();
            let open =
                |d: &Value| !matches!(d["status"].as_str(), Some("delivered" | "dead_lettered"));
            if ds.iter().any(open) {
                Err(v.to_string())
            } else {
                Ok(ds)
            }
        },
        &format!("every delivery of {ep} delivered or dead-lettered"),
        PATIENCE,
    )
    .await;
    wait_metrics(api, "no request in flight", |m| {
        m.get("hookd_deliveries_in_flight") == 0
    })
    .await;
    ds
}

/// An RFC 3339 time of the API as unix milliseconds.
#[track_caller]
pub fn unix_ms(v: &Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let t = humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {s:?}"));
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

// ---------------------------------------------------------------------------------------------
// Signatures that must not verify
// ---------------------------------------------------------------------------------------------

/// A delivered request as the verifier sees it, to tamper with.
#[derive(Debug, Clone)]
pub struct Signed {
    pub secret: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Signed {
    pub fn of(secret: &str, req: &Recorded) -> Signed {
        Signed {
            secret: secret.to_owned(),
            headers: req.headers.clone(),
            body: req.body_str().to_owned(),
        }
    }

    pub fn with_secret(mut self, secret: &str) -> Signed {
        self.secret = secret.to_owned();
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Signed {
        self.headers.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn with_body(mut self, body: String) -> Signed {
        self.body = body;
        self
    }
}

/// Runs `scripts/verify_standardwebhooks.py` (the public `standardwebhooks` library) on every
/// `(what, item, reason)` expecting each to be rejected with an error containing `reason`;
/// `control` is verified alongside and must pass, so a rejection cannot come from a broken setup.
pub async fn verify_with_python_expect_fail(control: &Signed, items: &[(&str, Signed, &str)]) {
    let entry = |s: &Signed, expect: &str| json!({"secret": s.secret, "headers": s.headers, "body": s.body, "expect": expect});
    let mut input = vec![entry(control, "ok")];
    input.extend(items.iter().map(|(_, s, _)| entry(s, "fail")));
    let script = verify_script();
    let mut child = tokio::process::Command::new("python3")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(&serde_json::to_vec(&input).unwrap())
            .await
            .unwrap();
    }
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {PATIENCE:?}", script.display()))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "standardwebhooks verification did not go as expected ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(
        stdout.lines().last(),
        Some(format!("ok {}", input.len()).as_str()),
        "unexpected verifier output:\n{stdout}\n{stderr}"
    );
    for (i, (what, _, reason)) in items.iter().enumerate() {
        let prefix = format!("rejected {}: ", i + 1);
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{what}: no rejection reported:\n{stdout}"));
        assert!(
            line.contains(reason),
            "{what}: rejected for another reason than {reason:?}: {line}"
        );
    }
}
