//! Delivery over https: rustls with HTTP/2 by ALPN, trusting a CA given by `[sender] ca_file`.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

/// The HTTP version and the request, as the harness records it, of each request.
type Seen = Arc<Mutex<Vec<(http::Version, Recorded)>>>;

/// An https receiver on 127.0.0.1 with a fresh self-signed certificate, written as PEM to
/// `ca_path`. Offers h2 and http/1.1; answers 204.
async fn tls_receiver(ca_path: &std::path::Path) -> (String, Seen) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(ca_path, cert.pem()).unwrap();
    let key_der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key_der.into())
    .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let version = req.version();
                        let (parts, body) = req.into_parts();
                        let headers: BTreeMap<String, String> = parts
                            .headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.as_str().to_owned(),
                                    v.to_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect();
                        let body = body.collect().await.unwrap().to_bytes();
                        let mut log = log.lock().unwrap();
                        let rec = Recorded {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_owned(),
                            query: parts.uri.query().map(str::to_owned),
                            headers,
                            body,
                            at: Instant::now(),
                            nth: log.len() + 1,
                            status: 204,
                        };
                        log.push((version, rec));
                        let mut resp = http::Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = http::StatusCode::NO_CONTENT;
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (format!("https://{addr}/hook"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_https_with_h2_to_a_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let (url, seen) = tls_receiver(&ca).await;
    let cfg = Config::new(dir.path())
        .set("sender", "ca_file", &toml_str(&ca.to_string_lossy()))
        .set("sender", "require_https", "true");
    let d = Daemon::start(dir.path(), &cfg).await;
    // require_https: plain http endpoints are refused.
    d.api
        .post(
            "/v1/endpoints",
            &json!({"name": "plain", "url": "http://127.0.0.1:9/x", "event_types": ["*"]}),
        )
        .await
        .expect_error(400, "VALIDATION_ERROR");
    let (_ep, secret, _) = d
        .api
        .create_endpoint(json!({"name": "tls", "url": url, "event_types": ["*"]}))
        .await;
    let ev = d
        .api
        .post_event(json!({"type": "instance.ready", "data": {"gpu": "h100"}}))
        .await;
    let id = ev["id"].as_str().unwrap().to_owned();
    let ds = d.api.wait_event_deliveries(&id, 1, PATIENCE).await;
    let dlv = ds[0]["id"].as_str().unwrap().to_owned();
    let dv = d
        .api
        .wait_delivery_status(&dlv, "delivered", PATIENCE)
        .await;
    assert_eq!(dv["last_status_code"], 204, "{dv}");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let (version, req) = &got[0];
    assert_eq!(*version, http::Version::HTTP_2);
    assert_eq!(req.webhook_id(), id);
    assert!(
        req.body_str().contains(r#""data":{"gpu":"h100"}"#),
        "{:?}",
        req.body
    );
    // Signed over HTTP/2 just as over HTTP/1: the public library verifies it.
    assert_signed(req, &secret);
    verify_with_python(&[(&secret, req)]);
}
