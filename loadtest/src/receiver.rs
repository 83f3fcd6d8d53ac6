//! The webhook receiver: a hyper 1 HTTP/1.1 keep-alive server on its own tokio runtime (threads
//! named [`RECEIVER_THREAD`], so its CPU time can be told apart from the rest of the process).
//! It answers every POST with a fixed status after an optional delay and counts requests,
//! distinct `webhook-id` headers and distinct (path, `webhook-id`) pairs ("deliveries").

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;

use crate::cpu::RECEIVER_THREAD;

/// Where the once-a-second rate line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub listen: SocketAddr,
    pub status: StatusCode,
    pub delay: Duration,
    pub threads: usize,
    pub report: Report,
}

#[derive(Default)]
pub struct Stats {
    requests: AtomicU64,
    body_bytes: AtomicU64,
    non_post: AtomicU64,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<u64>,
    pairs: HashSet<u64>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// POSTs answered.
    pub requests: u64,
    /// Distinct `webhook-id` values.
    pub unique_ids: u64,
    /// Distinct (path, `webhook-id`) pairs: one per endpoint and event.
    pub deliveries: u64,
    pub body_bytes: u64,
    pub non_post: u64,
}

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

impl Stats {
    fn record(&self, path: &str, id: Option<&[u8]>, body_len: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.body_bytes
            .fetch_add(body_len as u64, Ordering::Relaxed);
        if let Some(id) = id {
            let id_hash = hash64(&[id]);
            let pair_hash = hash64(&[path.as_bytes(), id]);
            let mut seen = self.seen.lock().unwrap();
            seen.ids.insert(id_hash);
            seen.pairs.insert(pair_hash);
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let (unique_ids, deliveries) = {
            let seen = self.seen.lock().unwrap();
            (seen.ids.len() as u64, seen.pairs.len() as u64)
        };
        Snapshot {
            requests: self.requests.load(Ordering::Relaxed),
            unique_ids,
            deliveries,
            body_bytes: self.body_bytes.load(Ordering::Relaxed),
            non_post: self.non_post.load(Ordering::Relaxed),
        }
    }
}

/// A running receiver. Dropping it stops it.
pub struct Receiver {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    runtime: Option<Runtime>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Receiver {
    /// Binds and starts serving on a runtime of its own. Call it outside any async context.
    pub fn start(cfg: ReceiverConfig) -> Result<Receiver> {
        crate::require_loopback_addr(&cfg.listen)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads.max(1))
            .thread_name(RECEIVER_THREAD)
            .enable_all()
            .build()
            .context("starting the receiver runtime")?;
        let listener = runtime
            .block_on(async {
                let sock = tokio::net::TcpSocket::new_v4()?;
                sock.set_reuseaddr(true)?;
                sock.bind(cfg.listen)?;
                sock.listen(4096)
            })
            .with_context(|| format!("binding the receiver to {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        runtime.spawn(accept_loop(listener, stats.clone(), cfg.status, cfg.delay));
        runtime.spawn(report_loop(stats.clone(), cfg.report));
        Ok(Receiver {
            addr,
            stats,
            runtime: Some(runtime),
        })
    }

    pub fn snapshot(&self) -> Snapshot {
        self.stats.snapshot()
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    stats: Arc<Stats>,
    status: StatusCode,
    delay: Duration,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of file descriptors and the like: back off a little.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let stats = stats.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, stats.clone(), status, delay));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    stats: Arc<Stats>,
    status: StatusCode,
    delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST {
        stats.non_post.fetch_add(1, Ordering::Relaxed);
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return Ok(resp);
    }
    let (parts, body) = req.into_parts();
    let body_len = match body.collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => 0,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    stats.record(
        parts.uri.path(),
        parts.headers.get("webhook-id").map(|v| v.as_bytes()),
        body_len,
    );
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    Ok(resp)
}

async fn report_loop(stats: Arc<Stats>, report: Report) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let s = stats.snapshot();
        let rate = s.requests - last;
        last = s.requests;
        match report {
            Report::Stdout => out!(
                "received/s {rate} (total {}, unique ids {}, deliveries {})",
                s.requests,
                s.unique_ids,
                s.deliveries
            ),
            // Embedded: progress only while something arrives, on stderr.
            Report::Stderr if rate > 0 => eprintln!(
                "[receiver] received/s {rate} (total {}, deliveries {})",
                s.requests, s.deliveries
            ),
            Report::Stderr => {}
        }
    }
}
