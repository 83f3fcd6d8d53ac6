//! The pooled HTTP client used for every delivery.
//!
//! One hyper-util client is built once and shared (cloning [`HttpClient`] is an `Arc` bump): a
//! keep-alive pool per host, HTTP/1.1 or HTTP/2 chosen by ALPN over rustls (ring provider, Mozilla
//! roots). Name resolution goes through [`PolicyResolver`], which drops every resolved address the
//! [`TargetPolicy`] forbids, so a public-looking name that resolves (or rebinds) to a private
//! address is refused at connect time. IP literals skip the resolver inside hyper-util, so
//! [`HttpClient::post`] checks them itself before sending.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use hookd_types::{ErrorKind, RESPONSE_EXCERPT_BYTES};

use crate::policy::{is_forbidden_ip, numeric_ipv4, TargetPolicy, UrlError};
use crate::rules;

/// Sent when the caller gives no `user-agent`.
const DEFAULT_USER_AGENT: &str = concat!("hookd/", env!("CARGO_PKG_VERSION"));

/// Adds `user-agent: hookd/<version>` unless the headers name one already.
pub fn add_user_agent(headers: &mut HeaderMap) {
    if !headers.contains_key(USER_AGENT) {
        headers.insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
    }
}
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on pooled connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Bound on the error `source()` chain walked when classifying a failure.
const MAX_ERROR_DEPTH: usize = 32;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bound on a whole exchange: connect, TLS, request, reading the response excerpt.
    pub timeout: Duration,
    pub policy: TargetPolicy,
    /// Most idle keep-alive connections kept per host.
    pub pool_idle_per_host: usize,
    /// Certificate authorities trusted besides the public (webpki) roots, e.g. a company CA.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            policy: TargetPolicy {
                allow_private: false,
                require_https: false,
            },
            pool_idle_per_host: 64,
            extra_roots: Vec::new(),
        }
    }
}

/// What the endpoint answered. Any status is a response; the caller decides what succeeds.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The first [`RESPONSE_EXCERPT_BYTES`] (4096) bytes of the body at most.
    pub body_excerpt: Bytes,
    /// From the start of [`HttpClient::post`] to the end of the excerpt.
    pub latency: Duration,
    /// The wait a 429 or 503 asked for with `Retry-After`, clamped ([`crate::rules`]).
    pub retry_after: Option<Duration>,
}

/// Why no response was had.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {detail}")]
pub struct SendError {
    pub kind: ErrorKind,
    /// The error and its causes, `: `-separated.
    pub detail: String,
    pub latency: Duration,
}

type Connector = HttpsConnector<HttpConnector<PolicyResolver>>;

/// The shared delivery client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
    policy: TargetPolicy,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.inner.timeout)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    pub fn new(cfg: ClientConfig) -> Self {
        let mut http = HttpConnector::new_with_resolver(PolicyResolver {
            allow_private: cfg.policy.allow_private,
        });
        // The TLS layer above handles `https`; this layer must accept it too.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_keepalive(Some(TCP_KEEPALIVE));
        http.set_connect_timeout(Some(cfg.timeout));

        let mut roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // Invalid extra roots were refused when the configuration was read.
        let (_added, _ignored) = roots.add_parsable_certificates(cfg.extra_roots.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("rustls' ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);

        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(cfg.pool_idle_per_host)
            .build(https);

        Self {
            inner: Arc::new(Inner {
                client,
                timeout: cfg.timeout,
                policy: cfg.policy,
            }),
        }
    }

    /// POSTs `body` to `uri` with `headers` (plus `user-agent: hookd/<version>` if absent).
    /// The whole exchange, up to reading [`RESPONSE_EXCERPT_BYTES`] of the response body, is
    /// bounded by the configured timeout ([`ErrorKind::Timeout`]). Any status is `Ok`.
    pub async fn post(
        &self,
        uri: &Uri,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, SendError> {
        let start = Instant::now();
        let fail = |kind, detail| SendError {
            kind,
            detail,
            latency: start.elapsed(),
        };

        // The URL was checked when the endpoint was saved, but the policy may have changed since,
        // and IP literals never reach the resolver.
        if let Err(e) = self.inner.policy.check_uri(uri) {
            let kind = match e {
                UrlError::Forbidden(_) => ErrorKind::ForbiddenTarget,
                UrlError::Invalid(_) | UrlError::HttpsRequired => ErrorKind::InvalidUrl,
            };
            return Err(fail(kind, e.to_string()));
        }

        add_user_agent(&mut headers);
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers;

        match tokio::time::timeout(self.inner.timeout, self.exchange(req)).await {
            Ok(Ok((status, body_excerpt, retry_after))) => Ok(Response {
                status,
                body_excerpt,
                latency: start.elapsed(),
                retry_after,
            }),
            Ok(Err((kind, detail))) => Err(fail(kind, detail)),
            Err(_) => Err(fail(
                ErrorKind::Timeout,
                format!("no response within {:?}", self.inner.timeout),
            )),
        }
    }

    async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<(u16, Bytes, Option<Duration>), (ErrorKind, String)> {
        let resp = self.inner.client.request(req).await.map_err(|e| {
            let fallback = if e.is_connect() {
                ErrorKind::Connect
            } else {
                ErrorKind::Io
            };
            classify(&e, fallback)
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .filter(|_| rules::asks_to_wait(status))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| rules::retry_after(v, std::time::SystemTime::now()));
        let excerpt = read_excerpt(resp.into_body())
            .await
            .map_err(|e| (ErrorKind::Io, classify(&e, ErrorKind::Io).1))?;
        Ok((status, excerpt, retry_after))
    }
}

/// Reads the body up to [`RESPONSE_EXCERPT_BYTES`]. A body read to its end lets the connection
/// go back to the pool; a longer one is dropped unread, which closes its connection.
async fn read_excerpt(mut body: Incoming) -> Result<Bytes, hyper::Error> {
    let mut excerpt = BytesMut::new();
    while excerpt.len() < RESPONSE_EXCERPT_BYTES {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            let room = RESPONSE_EXCERPT_BYTES - excerpt.len();
            excerpt.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(excerpt.freeze())
}

/// The one place errors are classified: walks the `source()` chain (and the payloads of
/// `io::Error`s, whose `source()` skips them) for the most specific cause, and joins the chain's
/// messages into the detail. `fallback` is the kind when nothing in the chain is specific.
fn classify(err: &(dyn StdError + 'static), fallback: ErrorKind) -> (ErrorKind, String) {
    let mut specific = None; // DNS, policy or TLS: decides over everything else
    let mut from_io = None; // an OS-level cause (refused, unreachable, timed out)
    let mut detail = String::new();
    let mut next = Some(err);
    for _ in 0..MAX_ERROR_DEPTH {
        let Some(e) = next else { break };
        let text = e.to_string();
        if !text.is_empty() && !detail.ends_with(&text) {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(&text);
        }
        if let Some(r) = e.downcast_ref::<ResolveError>() {
            specific.get_or_insert(match r {
                ResolveError::Forbidden { .. } => ErrorKind::ForbiddenTarget,
                ResolveError::Lookup { .. } | ResolveError::NoAddress { .. } => ErrorKind::Dns,
            });
        } else if e.is::<rustls::Error>() {
            specific.get_or_insert(ErrorKind::Tls);
        }
        next = match e.downcast_ref::<io::Error>() {
            Some(io) => {
                if from_io.is_none() {
                    from_io = io_error_kind(io.kind());
                }
                match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn StdError + 'static)),
                    None => e.source(),
                }
            }
            None => e.source(),
        };
    }
    (specific.or(from_io).unwrap_or(fallback), detail)
}

fn io_error_kind(kind: io::ErrorKind) -> Option<ErrorKind> {
    use io::ErrorKind as K;
    match kind {
        K::TimedOut => Some(ErrorKind::Timeout),
        K::ConnectionRefused
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::AddrNotAvailable
        | K::NotConnected => Some(ErrorKind::Connect),
        _ => None,
    }
}

/// Resolves names with the system resolver and, unless private targets are allowed, keeps only
/// addresses [`is_forbidden_ip`] accepts; a name left with none is refused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolicyResolver {
    allow_private: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    #[error("resolving {host}")]
    Lookup {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("{host} resolved to no address")]
    NoAddress { host: String },
    #[error("{host} resolves only to non-public addresses ({ip})")]
    Forbidden { host: String, ip: IpAddr },
}

impl tower::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str();
            // A numeric host (`127.1`, `0x7f.1`) is read as the policy reads it, not by whatever
            // the system resolver makes of it. Port 0: the connector puts the URL's port on
            // every address.
            let numeric = numeric_ipv4(host).ok().flatten();
            let resolved = match numeric {
                Some(ip) => Ok(vec![SocketAddr::from((ip, 0))]),
                None => tokio::net::lookup_host((host, 0))
                    .await
                    .map(|addrs| addrs.collect()),
            };
            let mut addrs: Vec<SocketAddr> = match resolved {
                Ok(addrs) => addrs,
                Err(source) => {
                    return Err(ResolveError::Lookup {
                        host: host.to_owned(),
                        source,
                    })
                }
            };
            let Some(first) = addrs.first().copied() else {
                return Err(ResolveError::NoAddress {
                    host: host.to_owned(),
                });
            };
            if !allow_private {
                addrs.retain(|a| !is_forbidden_ip(a.ip()));
                if addrs.is_empty() {
                    return Err(ResolveError::Forbidden {
                        host: host.to_owned(),
                        ip: first.ip(),
                    });
                }
            }
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests;
