//! Serving: the accept loop, one hyper connection (HTTP/1.1 or HTTP/2, plain or TLS) per
//! accepted stream, and the handler that counts, records and answers each request.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};

use crate::body::ReplyBody;
use crate::io::ConnIo;
use crate::record::{Counts, Observed, Observer, Record, Recorded};
use crate::reply::{Action, Reply};

pub(crate) struct Shared {
    pub(crate) record: Record,
    pub(crate) default: Reply,
    pub(crate) post_only: bool,
    /// Serve HTTP/1.1 only, without sniffing for the HTTP/2 preface.
    pub(crate) http1_only: bool,
    pub(crate) observer: Option<Observer>,
    pub(crate) paths: Mutex<HashMap<String, PathState>>,
    pub(crate) requests: Mutex<Vec<Recorded>>,
    seen: Mutex<Seen>,
    pub(crate) requests_n: AtomicU64,
    pub(crate) body_bytes: AtomicU64,
    pub(crate) non_post: AtomicU64,
    pub(crate) connections: AtomicU64,
    /// Requests read and not yet answered (or dropped).
    pub(crate) in_flight: AtomicU64,
    /// Woken after each request is counted and recorded.
    pub(crate) changed: Notify,
}

impl Shared {
    pub(crate) fn new(
        record: Record,
        default: Reply,
        post_only: bool,
        http1_only: bool,
        observer: Option<Observer>,
    ) -> Shared {
        Shared {
            record,
            default,
            post_only,
            http1_only,
            observer,
            paths: Mutex::default(),
            requests: Mutex::default(),
            seen: Mutex::default(),
            requests_n: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
            non_post: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        let (unique_ids, deliveries) = {
            let seen = lock(&self.seen);
            (seen.ids.len() as u64, seen.pairs.len() as u64)
        };
        Counts {
            requests: self.requests_n.load(Ordering::Relaxed),
            unique_ids,
            deliveries,
            body_bytes: self.body_bytes.load(Ordering::Relaxed),
            non_post: self.non_post.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
pub(crate) struct PathState {
    pub(crate) script: Option<Reply>,
    pub(crate) hits: usize,
}

/// Hashes of the `webhook-id`s and (path, `webhook-id`) pairs seen.
#[derive(Default)]
struct Seen {
    ids: HashSet<u64>,
    pairs: HashSet<u64>,
}

/// A poisoned lock only means a test panicked while holding it; the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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

/// Holds one count of [`Shared::in_flight`] until the handler returns or is dropped.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a AtomicU64) -> InFlight<'a> {
        gauge.fetch_add(1, Ordering::SeqCst);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Returned by the service to make hyper drop the connection without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose")]
struct Dropped;

pub(crate) async fn accept_loop(
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
    let http1_only = shared.http1_only;
    let svc = hyper::service::service_fn(move |req| handle(shared.clone(), conn.clone(), req));
    let io = TokioIo::new(io);
    let _ = if http1_only {
        hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .await
            .map_err(Into::into)
    } else {
        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(io, svc)
            .await
    };
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
    let _in_flight = InFlight::enter(&shared.in_flight);
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
    if let Some(observer) = &shared.observer {
        observer.call(&Observed {
            path,
            headers: &parts.headers,
            body: &body,
            status: action.status(),
        });
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
