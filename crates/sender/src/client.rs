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

/// Sent when the caller gives no `user-agent`.
const DEFAULT_USER_AGENT: &str = concat!("hookd/", env!("CARGO_PKG_VERSION"));
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

        if !headers.contains_key(USER_AGENT) {
            headers.insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
        }
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers;

        match tokio::time::timeout(self.inner.timeout, self.exchange(req)).await {
            Ok(Ok((status, body_excerpt))) => Ok(Response {
                status,
                body_excerpt,
                latency: start.elapsed(),
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
    ) -> Result<(u16, Bytes), (ErrorKind, String)> {
        let resp = self.inner.client.request(req).await.map_err(|e| {
            let fallback = if e.is_connect() {
                ErrorKind::Connect
            } else {
                ErrorKind::Io
            };
            classify(&e, fallback)
        })?;
        let status = resp.status().as_u16();
        let excerpt = read_excerpt(resp.into_body())
            .await
            .map_err(|e| (ErrorKind::Io, classify(&e, ErrorKind::Io).1))?;
        Ok((status, excerpt))
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
mod tests {
    use std::convert::Infallible;
    use std::str::FromStr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tower::{Service, ServiceExt};

    use super::*;

    const OPEN: TargetPolicy = TargetPolicy {
        allow_private: true,
        require_https: false,
    };
    const STRICT: TargetPolicy = TargetPolicy {
        allow_private: false,
        require_https: false,
    };

    fn client(policy: TargetPolicy, timeout: Duration) -> HttpClient {
        HttpClient::new(ClientConfig {
            timeout,
            policy,
            ..ClientConfig::default()
        })
    }

    struct TestServer {
        addr: SocketAddr,
        /// Accepted TCP connections.
        conns: Arc<AtomicUsize>,
    }

    impl TestServer {
        fn uri(&self, path: &str) -> Uri {
            format!("http://{}{path}", self.addr).parse().unwrap()
        }
    }

    /// An HTTP/1.1 server on 127.0.0.1:0; `handler` gets the request head and the whole body.
    async fn serve<F, Fut>(handler: F) -> TestServer
    where
        F: Fn(http::request::Parts, Bytes) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = http::Response<Full<Bytes>>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let counter = conns.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            Ok::<_, Infallible>(handler(parts, body).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TestServer { addr, conns }
    }

    fn reply(status: u16, body: impl Into<Bytes>) -> http::Response<Full<Bytes>> {
        http::Response::builder()
            .status(status)
            .body(Full::new(body.into()))
            .unwrap()
    }

    /// Answers `<user-agent>|<x-test header>|<request body>` then pads past the excerpt limit.
    async fn echo(parts: http::request::Parts, body: Bytes) -> http::Response<Full<Bytes>> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let mut out = format!(
            "{}|{}|{}|",
            header("user-agent"),
            header("x-test"),
            String::from_utf8_lossy(&body)
        )
        .into_bytes();
        out.resize(10_000, b'x');
        reply(200, out)
    }

    #[tokio::test]
    async fn ok_with_excerpt_truncated() {
        let server = serve(echo).await;
        let c = client(OPEN, Duration::from_secs(5));
        let mut headers = HeaderMap::new();
        headers.insert("x-test", HeaderValue::from_static("yes"));
        let r = c
            .post(
                &server.uri("/hook"),
                headers,
                Bytes::from_static(b"{\"a\":1}"),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body_excerpt.len(), RESPONSE_EXCERPT_BYTES);
        let expected = format!("{DEFAULT_USER_AGENT}|yes|{{\"a\":1}}|xxx");
        assert!(
            r.body_excerpt.starts_with(expected.as_bytes()),
            "{:?}",
            String::from_utf8_lossy(&r.body_excerpt[..64])
        );
        assert!(r.latency < Duration::from_secs(5));

        // A caller's user-agent is kept.
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static("custom/1"));
        let r = c
            .post(&server.uri("/hook"), headers, Bytes::new())
            .await
            .unwrap();
        assert!(r.body_excerpt.starts_with(b"custom/1||"));
    }

    #[tokio::test]
    async fn error_status_is_a_response() {
        let server = serve(|_, _| async { reply(500, "boom") }).await;
        let c = client(OPEN, Duration::from_secs(5));
        let r = c
            .post(&server.uri("/"), HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(&r.body_excerpt[..], b"boom");
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        let server = serve(|_, _| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            reply(200, "late")
        })
        .await;
        let c = client(OPEN, Duration::from_millis(200));
        let e = c
            .post(&server.uri("/"), HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
        assert!(e.latency >= Duration::from_millis(200), "{e:?}");
        assert!(e.latency < Duration::from_secs(2), "{e:?}");
    }

    /// Answers one request with headers promising 100 bytes and only 3 of them, then either
    /// stalls for `stall` or closes the connection.
    async fn truncated_body_server(stall: Option<Duration>) -> Uri {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
                .await;
            match stall {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    let _ = s.shutdown().await;
                }
            }
        });
        format!("http://{addr}/").parse().unwrap()
    }

    /// An https server on 127.0.0.1 with a fresh self-signed certificate, offering h2 and
    /// http/1.1 by ALPN. Returns its URL, its certificate and the HTTP version of each request.
    async fn tls_server() -> (
        Uri,
        rustls::pki_types::CertificateDer<'static>,
        Arc<std::sync::Mutex<Vec<http::Version>>>,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_der = cert.der().clone();
        let key_der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key_der.into())
        .unwrap();
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let versions = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = versions.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: Request<Incoming>| {
                        seen.lock().unwrap().push(req.version());
                        async {
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"secure"),
                            )))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (
            format!("https://{addr}/hook").parse().unwrap(),
            cert_der,
            versions,
        )
    }

    #[tokio::test]
    async fn https_with_a_trusted_ca_speaks_h2() {
        let (uri, cert, versions) = tls_server().await;
        let c = HttpClient::new(ClientConfig {
            timeout: Duration::from_secs(5),
            policy: OPEN,
            extra_roots: vec![cert],
            ..ClientConfig::default()
        });
        for _ in 0..2 {
            let r = c
                .post(&uri, HeaderMap::new(), Bytes::from_static(b"{}"))
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(&r.body_excerpt[..], b"secure");
        }
        assert_eq!(*versions.lock().unwrap(), vec![http::Version::HTTP_2; 2]);
    }

    #[tokio::test]
    async fn https_with_an_unknown_ca_is_a_tls_error() {
        let (uri, _cert, versions) = tls_server().await;
        let e = client(OPEN, Duration::from_secs(5))
            .post(&uri, HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Tls, "{e}");
        assert!(versions.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn slow_body_times_out() {
        // Headers at once, then a body that never ends: reading the excerpt is bounded too.
        let uri = truncated_body_server(Some(Duration::from_secs(3))).await;
        let c = client(OPEN, Duration::from_millis(200));
        let e = c
            .post(&uri, HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    }

    #[tokio::test]
    async fn body_cut_short_is_io() {
        let uri = truncated_body_server(None).await;
        let c = client(OPEN, Duration::from_secs(5));
        let e = c
            .post(&uri, HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io, "{e}");
    }

    #[tokio::test]
    async fn connection_refused() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let c = client(OPEN, Duration::from_secs(5));
        let uri: Uri = format!("http://{addr}/").parse().unwrap();
        let e = c
            .post(&uri, HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Connect, "{e}");
        assert!(e.detail.contains("refused"), "{e}");
    }

    #[tokio::test]
    async fn private_targets_refused() {
        let server = serve(|_, _| async { reply(200, "ok") }).await;
        let c = client(STRICT, Duration::from_secs(5));
        let port = server.addr.port();
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://[::1]:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            // Not IP literals to hyper-util: these go through the resolver.
            format!("http://localhost:{port}/"),
            format!("http://127.1:{port}/"),
            format!("http://2130706433:{port}/"),
        ] {
            let e = c
                .post(&url.parse().unwrap(), HeaderMap::new(), Bytes::new())
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::ForbiddenTarget, "{url}: {e}");
        }
        assert_eq!(server.conns.load(Ordering::SeqCst), 0);

        // The same targets with private targets allowed.
        let c = client(OPEN, Duration::from_secs(5));
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://localhost:{port}/"),
        ] {
            let r = c
                .post(&url.parse().unwrap(), HeaderMap::new(), Bytes::new())
                .await
                .unwrap();
            assert_eq!(r.status, 200);
        }
    }

    #[tokio::test]
    async fn resolver_filters_addresses() {
        let mut strict = PolicyResolver {
            allow_private: false,
        };
        let e = strict
            .ready()
            .await
            .unwrap()
            .call(Name::from_str("localhost").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, ResolveError::Forbidden { .. }), "{e}");
        let (kind, detail) = classify(&e, ErrorKind::Connect);
        assert_eq!(kind, ErrorKind::ForbiddenTarget);
        assert!(detail.contains("localhost"), "{detail}");

        let mut open = PolicyResolver {
            allow_private: true,
        };
        let addrs: Vec<_> = open
            .ready()
            .await
            .unwrap()
            .call(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn resolver_reads_numeric_hosts_as_the_policy_does() {
        for host in ["0x7f.1", "127.1", "2130706433", "017700000001"] {
            let e = PolicyResolver {
                allow_private: false,
            }
            .call(Name::from_str(host).unwrap())
            .await
            .unwrap_err();
            assert!(matches!(e, ResolveError::Forbidden { .. }), "{host}: {e}");
            let addrs: Vec<_> = PolicyResolver {
                allow_private: true,
            }
            .call(Name::from_str(host).unwrap())
            .await
            .unwrap()
            .collect();
            assert_eq!(addrs, [SocketAddr::from(([127, 0, 0, 1], 0))], "{host}");
        }
    }

    #[tokio::test]
    async fn unknown_name_is_dns() {
        let c = client(OPEN, Duration::from_secs(10));
        let uri: Uri = "http://no-such-host.invalid/x".parse().unwrap();
        let e = c
            .post(&uri, HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Dns, "{e}");
    }

    #[tokio::test]
    async fn tls_to_plain_server_is_tls() {
        let server = serve(|_, _| async { reply(200, "ok") }).await;
        let c = client(OPEN, Duration::from_secs(5));
        let uri: Uri = format!("https://{}/", server.addr).parse().unwrap();
        let e = c
            .post(&uri, HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    }

    #[tokio::test]
    async fn url_checks() {
        let server = serve(|_, _| async { reply(200, "ok") }).await;
        let https_only = client(
            TargetPolicy {
                allow_private: true,
                require_https: true,
            },
            Duration::from_secs(5),
        );
        let e = https_only
            .post(&server.uri("/"), HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidUrl, "{e}");

        let c = client(OPEN, Duration::from_secs(5));
        for url in ["/relative", "ftp://example.com/x"] {
            let e = c
                .post(&url.parse().unwrap(), HeaderMap::new(), Bytes::new())
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidUrl, "{url}: {e}");
        }
        assert_eq!(server.conns.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn keep_alive_reuses_the_connection() {
        let server = serve(|_, body| async move { reply(200, body) }).await;
        let c = client(OPEN, Duration::from_secs(5));
        for i in 0..3 {
            let r = c
                .clone()
                .post(
                    &server.uri("/"),
                    HeaderMap::new(),
                    Bytes::from(format!("n{i}")),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body_excerpt, format!("n{i}"));
            // Let the pool take the connection back.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(server.conns.load(Ordering::SeqCst), 1);
    }
}
