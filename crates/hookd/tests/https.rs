//! Delivery over https: rustls with HTTP/2 by ALPN, trusting a CA given by `[sender] ca_file`.

mod common;

use common::*;
use serde_json::json;

/// An https receiver on 127.0.0.1 with a fresh self-signed certificate, written as PEM to
/// `ca_path`. Offers h2 and http/1.1; answers 204.
async fn tls_receiver(ca_path: &std::path::Path) -> (String, Receiver) {
    let cert = SelfSigned::new(&["127.0.0.1"]).unwrap();
    std::fs::write(ca_path, cert.ca_pem()).unwrap();
    let rx = Receiver::builder()
        .tls(&cert)
        .unwrap()
        .start()
        .await
        .unwrap();
    (rx.url("/hook"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_https_with_h2_to_a_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let (url, rx) = tls_receiver(&ca).await;
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
    let got = rx.requests();
    assert_eq!(got.len(), 1, "{}", describe(&got));
    let (version, webhook_id, body) = (got[0].version, got[0].webhook_id(), &got[0].body);
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!(webhook_id, id);
    assert!(
        String::from_utf8_lossy(body).contains(r#""data":{"gpu":"h100"}"#),
        "{body:?}"
    );
    // Signed over HTTP/2 just as over HTTP/1: the public library verifies it.
    assert_signed(&got[0], &secret);
    verify_with_python(&[(&secret, &got[0])]);
}
