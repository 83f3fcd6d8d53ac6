//! The client against `hookd_testkit`'s receiver: what goes on the wire, and how each failure
//! is classified.

use std::str::FromStr;
use std::time::Instant;

use hookd_testkit::{AfterCut, Answer, Receiver, Reply, SelfSigned};
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
/// Longer than any test waits: a reply held this long has not been sent when a test ends.
const FOREVER: Duration = Duration::from_secs(3600);

fn client(policy: TargetPolicy, timeout: Duration) -> HttpClient {
    HttpClient::new(ClientConfig {
        timeout,
        policy,
        ..ClientConfig::default()
    })
}

fn uri(rx: &Receiver, path: &str) -> Uri {
    rx.url(path).parse().unwrap()
}

#[tokio::test]
async fn sends_headers_and_body_and_keeps_an_excerpt() {
    let rx = Receiver::start().await;
    let mut long = b"answer|".to_vec();
    long.resize(10_000, b'x');
    rx.script("/hook", Answer::status(200).body(long.clone()).into());
    let c = client(OPEN, Duration::from_secs(5));
    let mut headers = HeaderMap::new();
    headers.insert("x-test", HeaderValue::from_static("yes"));
    let before = Instant::now();
    let r = c
        .post(
            &uri(&rx, "/hook"),
            headers,
            Bytes::from_static(b"{\"a\":1}"),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(&r.body_excerpt[..], &long[..RESPONSE_EXCERPT_BYTES]);
    // Measured inside the call.
    assert!(r.latency <= before.elapsed(), "{:?}", r.latency);

    // A caller's user-agent is kept.
    let mut headers = HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static("custom/1"));
    c.post(&uri(&rx, "/hook"), headers, Bytes::new())
        .await
        .unwrap();

    let got = rx.requests_to("/hook");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("user-agent"), Some(DEFAULT_USER_AGENT));
    assert_eq!(got[0].header("x-test"), Some("yes"));
    assert_eq!(got[0].body_str(), "{\"a\":1}");
    assert_eq!(got[1].header("user-agent"), Some("custom/1"));
    assert_eq!(got[1].header("x-test"), None);
}

#[tokio::test]
async fn error_status_is_a_response() {
    let rx = Receiver::start().await;
    rx.script("/", Answer::status(500).body("boom").into());
    let c = client(OPEN, Duration::from_secs(5));
    let r = c
        .post(&uri(&rx, "/"), HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(&r.body_excerpt[..], b"boom");
}

#[tokio::test]
async fn slow_server_times_out() {
    // The receiver holds the answer far longer than the client's timeout: only the client's own
    // timer can end the call, and it must say so.
    let rx = Receiver::start().await;
    rx.script(
        "/",
        Reply::Slow {
            delay: FOREVER,
            status: 200,
        },
    );
    let c = client(OPEN, Duration::from_millis(200));
    let e = c
        .post(&uri(&rx, "/"), HeaderMap::new(), Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.detail.contains("no response within 200ms"), "{e}");
    assert!(e.latency >= Duration::from_millis(200), "{e:?}");
    // The request did arrive: the time went waiting for the answer, not connecting.
    rx.wait_for(1, Duration::from_secs(20)).await;
}

/// The error of a POST to a receiver that sends the head of a 100-byte answer, 3 bytes of it,
/// then `then`.
async fn cut_short(then: AfterCut, timeout: Duration) -> SendError {
    let rx = Receiver::start().await;
    rx.script(
        "/",
        Reply::Truncated {
            status: 200,
            promised: 100,
            body: Bytes::from_static(b"abc"),
            then,
        },
    );
    client(OPEN, timeout)
        .post(&uri(&rx, "/"), HeaderMap::new(), Bytes::new())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn slow_body_times_out() {
    // Headers at once, then a body that never ends: reading the excerpt is bounded too.
    let e = cut_short(AfterCut::Hold, Duration::from_millis(200)).await;
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
}

#[tokio::test]
async fn body_cut_short_is_io() {
    let e = cut_short(AfterCut::Close, Duration::from_secs(5)).await;
    assert_eq!(e.kind, ErrorKind::Io, "{e}");
}

#[tokio::test]
async fn connection_closed_or_reset_without_answer_is_io() {
    let rx = Receiver::start().await;
    rx.script("/close", Reply::Close);
    rx.script("/reset", Reply::Reset);
    let c = client(OPEN, Duration::from_secs(5));
    for path in ["/close", "/reset"] {
        let e = c
            .post(&uri(&rx, path), HeaderMap::new(), Bytes::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io, "{path}: {e}");
    }
    assert_eq!(rx.count(), 2);
}

/// An https receiver with a fresh self-signed certificate, offering h2 and http/1.1 by ALPN.
async fn tls_receiver() -> (Receiver, rustls::pki_types::CertificateDer<'static>) {
    let cert = SelfSigned::new(&["127.0.0.1"]).unwrap();
    let rx = Receiver::builder()
        .tls(&cert)
        .unwrap()
        .default_reply(Answer::status(200).body("secure").into())
        .start()
        .await
        .unwrap();
    (rx, cert.cert_der())
}

#[tokio::test]
async fn https_with_a_trusted_ca_speaks_h2() {
    let (rx, cert) = tls_receiver().await;
    let c = HttpClient::new(ClientConfig {
        timeout: Duration::from_secs(5),
        policy: OPEN,
        extra_roots: vec![cert],
        ..ClientConfig::default()
    });
    for _ in 0..2 {
        let r = c
            .post(
                &uri(&rx, "/hook"),
                HeaderMap::new(),
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&r.body_excerpt[..], b"secure");
    }
    let versions: Vec<_> = rx.requests().iter().map(|r| r.version).collect();
    assert_eq!(versions, vec![http::Version::HTTP_2; 2]);
}

#[tokio::test]
async fn https_with_an_unknown_ca_is_a_tls_error() {
    let (rx, _cert) = tls_receiver().await;
    let e = client(OPEN, Duration::from_secs(5))
        .post(&uri(&rx, "/hook"), HeaderMap::new(), Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
    assert!(rx.requests().is_empty());
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
    let rx = Receiver::start().await;
    let c = client(STRICT, Duration::from_secs(5));
    let port = rx.addr.port();
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
    assert_eq!(rx.connections(), 0);

    // The same targets with private targets allowed.
    rx.script("/", Reply::Status(200));
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
    let rx = Receiver::start().await;
    let c = client(OPEN, Duration::from_secs(5));
    let uri: Uri = format!("https://{}/", rx.addr).parse().unwrap();
    let e = c
        .post(&uri, HeaderMap::new(), Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Tls, "{e}");
}

#[tokio::test]
async fn url_checks() {
    let rx = Receiver::start().await;
    let https_only = client(
        TargetPolicy {
            allow_private: true,
            require_https: true,
        },
        Duration::from_secs(5),
    );
    let e = https_only
        .post(&uri(&rx, "/"), HeaderMap::new(), Bytes::new())
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
    assert_eq!(rx.connections(), 0);
}

#[tokio::test]
async fn keep_alive_reuses_the_connection() {
    let rx = Receiver::start().await;
    let c = client(OPEN, Duration::from_secs(5));
    for i in 0..3 {
        let r = c
            .clone()
            .post(
                &uri(&rx, "/"),
                HeaderMap::new(),
                Bytes::from(format!("n{i}")),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 204);
        // Let the pool take the connection back.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got: Vec<(String, u64)> = rx
        .requests()
        .iter()
        .map(|r| (r.body_str().to_owned(), r.conn))
        .collect();
    assert_eq!(
        got,
        vec![("n0".into(), 1), ("n1".into(), 1), ("n2".into(), 1)]
    );
    assert_eq!(rx.connections(), 1);
}
