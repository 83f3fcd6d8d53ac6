//! [`Receiver`]: a real hyper server (HTTP/1.1 and HTTP/2, plain or TLS) on a loopback port that
//! records what it gets and answers as each path is scripted.
//!
//! Every request is read to its end, counted ([`Counts`]), recorded ([`Recorded`]) unless the
//! receiver only counts ([`Record::Counts`], for throughput runs where keeping every request
//! would cost memory and time), and only then answered, so a request is visible to the `wait_*`
//! helpers as soon as it has arrived, even when its answer is delayed or never comes.
//!
//! Dropping the receiver stops it: the listener and every open connection are closed.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};

use crate::body::ReplyBody;
use crate::io::ConnIo;
use crate::reply::{Action, Reply};
use crate::tls::{SelfSigned, TlsError};

/// Pending connections the listener queues.
const BACKLOG: u32 = 4096;

/// What the receiver keeps of each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Every request as a [`Recorded`], plus the [`Counts`].
    Requests,
    /// Only the [`Counts`]: the fast path for load runs.
    Counts,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub version: Version,
    /// Lowercase names; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
    /// When the request head arrived.
    pub at: Instant,
    /// 1-based number of this request among the requests to its path.
    pub nth: usize,
    /// 1-based number of the connection it came on.
    pub conn: u64,
    /// The status the receiver decided to answer; 0 when it sends none (hang, close, reset).
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id").unwrap_or("")
    }

    /// The body as text; panics when it is not UTF-8.
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Running totals, kept in both [`Record`] modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered as scripted (not the ones refused by [`Builder::post_only`]).
    pub requests: u64,
    /// Distinct `webhook-id` values.
    pub unique_ids: u64,
    /// Distinct (path, `webhook-id`) pairs: one per endpoint and event.
    pub deliveries: u64,
    pub body_bytes: u64,
    /// Requests refused with 405 by [`Builder::post_only`].
    pub non_post: u64,
    /// TCP connections accepted.
    pub connections: u64,
}

/// How to start a [`Receiver`].
#[derive(Debug, Clone)]
pub struct Builder {
    listen: SocketAddr,
    record: Record,
    default: Reply,
    post_only: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            record: Record::Requests,
            default: Reply::Status(204),
            post_only: false,
            tls: None,
        }
    }
}

impl Builder {
    /// The address to listen on: loopback only (default `127.0.0.1:0`).
    pub fn listen(mut self, addr: SocketAddr) -> Builder {
        self.listen = addr;
        self
    }

    pub fn record(mut self, record: Record) -> Builder {
        self.record = record;
        self
    }

    /// The reply of paths without a script (default `Reply::Status(204)`).
    pub fn default_reply(mut self, reply: Reply) -> Builder {
        self.default = reply;
        self
    }

    /// Answers anything but POST with 405, without counting it as a request.
    pub fn post_only(mut self, yes: bool) -> Builder {
        self.post_only = yes;
        self
    }

    /// Serves https with `cert` (h2 and http/1.1 by ALPN).
    pub fn tls(mut self, cert: &SelfSigned) -> Result<Builder, TlsError> {
        self.tls = Some(cert.server_config()?);
        Ok(self)
    }

    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(self) -> io::Result<Receiver> {
        if !self.listen.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to listen on {}: loopback only", self.listen),
            ));
        }
        let sock = match self.listen {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        sock.set_reuseaddr(true)?;
        sock.bind(self.listen)?;
        let listener = sock.listen(BACKLOG)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            record: self.record,
            default: self.default,
            post_only: self.post_only,
            paths: Mutex::default(),
            requests: Mutex::default(),
            seen: Mutex::default(),
            requests_n: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
            non_post: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            changed: Notify::new(),
        });
        let (stop, stopped) = watch::channel(());
        let tls = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let https = tls.is_some();
        tokio::spawn(accept_loop(listener, shared.clone(), tls, stopped));
        Ok(Receiver {
            addr,
            https,
            shared,
            _stop: stop,
        })
    }
}

/// A real HTTP receiver on a loopback port. Paths without a script answer 204 (or the
/// builder's default reply).
pub struct Receiver {
    pub addr: SocketAddr,
    https: bool,
    shared: Arc<Shared>,
    /// Dropped with the receiver, which ends the accept loop and every connection.
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .field("https", &self.https)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A recording receiver on `127.0.0.1:0`; panics if it cannot bind.
    pub async fn start() -> Receiver {
        Builder::default()
            .start()
            .await
            .expect("start a receiver on 127.0.0.1:0")
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `http://ADDR/path` (`https://` when serving TLS).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// Sets how `path` is answered from now on (the per-path request count keeps going).
    pub fn script(&self, path: &str, reply: Reply) {
        lock(&self.shared.paths)
            .entry(path.to_owned())
            .or_default()
            .script = Some(reply);
    }

    /// Every request so far, oldest first (none when only counting).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Requests so far.
    pub fn count(&self) -> usize {
        match self.shared.record {
            Record::Requests => lock(&self.shared.requests).len(),
            Record::Counts => self.shared.requests_n.load(Ordering::Relaxed) as usize,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        let (unique_ids, deliveries) = {
            let seen = lock(&s.seen);
            (seen.ids.len() as u64, seen.pairs.len() as u64)
        };
        Counts {
            requests: s.requests_n.load(Ordering::Relaxed),
            unique_ids,
            deliveries,
            body_bytes: s.body_bytes.load(Ordering::Relaxed),
            non_post: s.non_post.load(Ordering::Relaxed),
            connections: s.connections.load(Ordering::Relaxed),
        }
    }

    /// Waits until `pred(all requests)` holds and returns them; panics after `timeout`.
    pub async fn wait_until<F>(&self, what: &str, timeout: Duration, pred: F) -> Vec<Recorded>
    where
        F: Fn(&[Recorded]) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let reqs = lock(&self.shared.requests);
                if pred(&reqs) {
                    return reqs.clone();
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let reqs = self.requests();
                panic!(
                    "receiver: timed out after {timeout:?} waiting for {what}; got {} requests:\n{}",
                    reqs.len(),
                    describe(&reqs)
                );
            }
        }
    }

    /// Waits until `pred(counts)` holds and returns the counts; panics after `timeout`.
    pub async fn wait_counts<F>(&self, what: &str, timeout: Duration, pred: F) -> Counts
    where
        F: Fn(&Counts) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let counts = self.counts();
            if pred(&counts) {
                return counts;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("receiver: timed out after {timeout:?} waiting for {what}; {counts:?}");
            }
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

/// One line per request, for failure messages.
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

// ---------------------------------------------------------------------------------------------
// Serving

struct Shared {
    record: Record,
    default: Reply,
    post_only: bool,
    paths: Mutex<HashMap<String, PathState>>,
    requests: Mutex<Vec<Recorded>>,
    seen: Mutex<Seen>,
    requests_n: AtomicU64,
    body_bytes: AtomicU64,
    non_post: AtomicU64,
    connections: AtomicU64,
    /// Woken after each request is counted and recorded.
    changed: Notify,
}

#[derive(Default)]
struct PathState {
    script: Option<Reply>,
    hits: usize,
}

/// Hashes of the `webhook-id`s and (path, `webhook-id`) pairs seen.
#[derive(Default)]
struct Seen {
    ids: HashSet<u64>,
    pairs: HashSet<u64>,
}

/// A poisoned lock only means a test panicked while holding it; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// The connection a request came on.
struct Conn {
    id: u64,
    /// Raised to end the connection with a TCP reset.
    reset: Arc<AtomicBool>,
}

/// Returned by the service to make hyper drop the connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose")]
struct Dropped;

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stopped: watch::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of file descriptors and the like: back off a little.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let (shared, tls, mut stopped) = (shared.clone(), tls.clone(), stopped.clone());
        tokio::spawn(async move {
            let reset = Arc::new(AtomicBool::new(false));
            let io = ConnIo::new(stream, reset.clone());
            let conn = Arc::new(Conn { id, reset });
            let work = async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(io).await {
                            serve_connection(tls, shared, conn).await;
                        }
                    }
                    None => serve_connection(io, shared, conn).await,
                }
            };
            tokio::select! {
                _ = work => {}
                _ = stopped.changed() => {}
            }
        });
    }
}

async fn serve_connection<I>(io: I, shared: Arc<Shared>, conn: Arc<Conn>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| handle(shared.clone(), conn.clone(), req));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn handle(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<ReplyBody>, Dropped> {
    let at = Instant::now();
    if shared.post_only && req.method() != Method::POST {
        shared.non_post.fetch_add(1, Ordering::Relaxed);
        let mut resp = Response::new(ReplyBody::whole(Bytes::new()));
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return Ok(resp);
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let path = parts.uri.path();

    let (nth, action) = {
        let mut paths = lock(&shared.paths);
        if !paths.contains_key(path) {
            paths.insert(path.to_owned(), PathState::default());
        }
        let state = paths.get_mut(path).expect("inserted above");
        state.hits += 1;
        let reply = state.script.as_ref().unwrap_or(&shared.default);
        (state.hits, reply.action(state.hits))
    };

    shared.requests_n.fetch_add(1, Ordering::Relaxed);
    shared
        .body_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    if let Some(id) = parts.headers.get("webhook-id") {
        let id = id.as_bytes();
        let (id_hash, pair_hash) = (hash64(&[id]), hash64(&[path.as_bytes(), id]));
        let mut seen = lock(&shared.seen);
        seen.ids.insert(id_hash);
        seen.pairs.insert(pair_hash);
    }
    if shared.record == Record::Requests {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &parts.headers {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            headers
                .entry(k.as_str().to_owned())
                .and_modify(|e| {
                    e.push_str(", ");
                    e.push_str(&v);
                })
                .or_insert(v);
        }
        let recorded = Recorded {
            method: parts.method.to_string(),
            path: path.to_owned(),
            query: parts.uri.query().map(str::to_owned),
            version: parts.version,
            headers,
            body,
            at,
            nth,
            conn: conn.id,
            status: action.status(),
        };
        lock(&shared.requests).push(recorded);
    }
    shared.changed.notify_waiters();

    match action {
        Action::Answer(a) => {
            if !a.delay.is_zero() {
                tokio::time::sleep(a.delay).await;
            }
            let mut resp = Response::new(ReplyBody::whole(a.body));
            *resp.status_mut() = status(a.status);
            for (k, v) in &a.headers {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    http::HeaderValue::from_str(v),
                ) {
                    resp.headers_mut().append(k, v);
                }
            }
            Ok(resp)
        }
        Action::Truncated {
            status: code,
            promised,
            body,
            then,
        } => {
            let mut resp = Response::new(ReplyBody::Cut {
                data: Some(body),
                promised: promised as u64,
                then,
            });
            *resp.status_mut() = status(code);
            resp.headers_mut()
                .insert(http::header::CONTENT_LENGTH, promised.into());
            Ok(resp)
        }
        Action::Hang => std::future::pending().await,
        Action::Close => Err(Dropped),
        Action::Reset => {
            conn.reset.store(true, Ordering::Relaxed);
            Err(Dropped)
        }
    }
}

#[cfg(test)]
mod tests;
