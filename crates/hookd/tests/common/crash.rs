//! Crash-test additions to the harness: a config with sled's own periodic flush turned off, so
//! a test killing the daemon proves hookd's explicit flushes and not sled's timer; and a
//! receiver for long crash runs that keeps only counts (what arrived, per path and webhook-id)
//! and can fail or slow down some paths at random.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{secret_key, Config};

/// [`Config::new`] with `[storage] background_flush = "0"`.
pub fn crash_config(dir: &Path) -> Config {
    Config::new(dir).set("storage", "background_flush", "\"0\"")
}

/// How a [`CountingReceiver`] path answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// 204 at once.
    Ok,
    /// 503 with probability `fail` (until [`CountingReceiver::heal`]), else 204.
    Flaky { fail: f64 },
    /// 200 after a random delay in `min..max`.
    Slow { min: Duration, max: Duration },
}

#[derive(Default)]
struct Counts {
    /// path -> webhook-id -> 2xx answers given.
    delivered: HashMap<String, HashMap<String, u32>>,
    /// Requests answered with a failure, per path.
    failed: HashMap<String, usize>,
    /// path -> secret, for the signature check.
    secrets: HashMap<String, String>,
    /// Requests whose signature did not verify (path and webhook-id).
    bad_signatures: Vec<String>,
}

struct Shared {
    behaviours: HashMap<String, Behaviour>,
    counts: Mutex<Counts>,
    rng: Mutex<StdRng>,
    healed: AtomicBool,
    in_flight: AtomicUsize,
}

/// A receiver on 127.0.0.1:0 that survives any number of daemon restarts. It counts 2xx
/// answers per path and webhook-id (a request is counted once it is answered with success),
/// checks signatures where a secret is known, and holds no request bodies. Unknown paths
/// answer 204 and are counted too.
pub struct CountingReceiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CountingReceiver {
    /// `paths`: how each path answers; `seed` drives the random failures and delays.
    pub async fn start(paths: &[(&str, Behaviour)], seed: u64) -> CountingReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            behaviours: paths.iter().map(|(p, b)| (p.to_string(), *b)).collect(),
            counts: Mutex::new(Counts::default()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            healed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        });
        let sh = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let sh = sh.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| answer(sh.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        CountingReceiver { addr, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Checks the Standard Webhooks signature of every request to `path` against `secret`.
    pub fn expect_secret(&self, path: &str, secret: &str) {
        self.lock()
            .secrets
            .insert(path.to_string(), secret.to_string());
    }

    /// From now on flaky paths always succeed.
    pub fn heal(&self) {
        self.shared.healed.store(true, Ordering::SeqCst);
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// webhook-id -> success answers, for `path`.
    pub fn delivered(&self, path: &str) -> HashMap<String, u32> {
        self.lock().delivered.get(path).cloned().unwrap_or_default()
    }

    /// How many times `id` was answered with success on `path`.
    pub fn delivered_count(&self, path: &str, id: &str) -> u32 {
        self.lock()
            .delivered
            .get(path)
            .and_then(|m| m.get(id))
            .copied()
            .unwrap_or(0)
    }

    pub fn failed(&self, path: &str) -> usize {
        self.lock().failed.get(path).copied().unwrap_or(0)
    }

    pub fn bad_signatures(&self) -> Vec<String> {
        self.lock().bad_signatures.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.shared.counts.lock().unwrap()
    }
}

impl Drop for CountingReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether the Standard Webhooks headers of a request verify with `secret`.
fn signature_ok(secret: &str, id: &str, ts: &str, sigs: &str, body: &[u8]) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret_key(secret));
    let mut msg = format!("{id}.{ts}.").into_bytes();
    msg.extend_from_slice(body);
    let expected =
        base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, &msg).as_ref());
    sigs.split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

async fn answer(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight(&shared.in_flight);
    let path = req.uri().path().to_string();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, ts, sigs) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let body = req.into_body().collect().await?.to_bytes();
    let behaviour = shared
        .behaviours
        .get(&path)
        .copied()
        .unwrap_or(Behaviour::Ok);
    let (status, delay) = {
        let mut rng = shared.rng.lock().unwrap();
        match behaviour {
            Behaviour::Ok => (204, Duration::ZERO),
            Behaviour::Flaky { fail } => {
                let fails = !shared.healed.load(Ordering::SeqCst) && rng.random_bool(fail);
                (if fails { 503 } else { 204 }, Duration::ZERO)
            }
            Behaviour::Slow { min, max } => (200, rng.random_range(min..max)),
        }
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    {
        let mut c = shared.counts.lock().unwrap();
        if let Some(secret) = c.secrets.get(&path) {
            if !signature_ok(secret, &id, &ts, &sigs, &body) {
                c.bad_signatures.push(format!("{path} {id}"));
            }
        }
        if (200..300).contains(&status) {
            *c.delivered.entry(path).or_default().entry(id).or_insert(0) += 1;
        } else {
            *c.failed.entry(path).or_insert(0) += 1;
        }
    }
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    Ok(resp)
}
