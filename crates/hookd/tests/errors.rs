//! Every error code of docs/API.md, from outside, and that rejected requests change nothing.
//! INTERNAL_ERROR cannot be provoked from outside; it is covered by unit tests.

mod common;

use std::time::Instant;

use common::*;
use hyper::Method;
use serde_json::{json, Value};

async fn endpoint_count(api: &Api) -> usize {
    let v = api.get("/v1/endpoints?limit=500").await.expect(200).clone();
    v["data"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validation_errors() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let (ep_id, _, _) = api
        .create_endpoint(json!({"name": "all", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;

    // Events.
    let too_long = format!(
        r#"{{"type": "job.created", "id": "{}", "data": {{}}}}"#,
        "x".repeat(129)
    );
    let bad_events: Vec<(&str, &str)> = vec![
        ("malformed JSON", r#"{"type": "job.created", "data": "#),
        ("not an object", r#"[1, 2]"#),
        ("missing type", r#"{"data": {}}"#),
        ("type not a string", r#"{"type": 5, "data": {}}"#),
        ("unknown event type", r#"{"type": "nope.nope", "data": {}}"#),
        (
            "bad id charset",
            r#"{"type": "job.created", "id": "has space", "data": {}}"#,
        ),
        (
            "empty id",
            r#"{"type": "job.created", "id": "", "data": {}}"#,
        ),
        ("id too long", &too_long),
    ];
    for (what, body) in bad_events {
        let r = api.post_raw("/v1/events", body, &[]).await;
        assert_eq!(r.status, 400, "{what}: {body} -> {} {}", r.status, r.text);
        r.expect_error(400, "VALIDATION_ERROR");
    }
    // 128 characters of the allowed set is fine.
    let long_id = format!("A-z_0.9:{}", "x".repeat(120));
    let ok = api
        .post(
            "/v1/events",
            &json!({"type": "job.created", "id": long_id, "data": {}}),
        )
        .await;
    assert_eq!(ok.expect(202)["id"], long_id.as_str());

    // Endpoints.
    let bad_endpoints = [
        (
            "bad url",
            json!({"name": "x", "url": "not a url", "event_types": ["*"]}),
        ),
        (
            "relative url",
            json!({"name": "x", "url": "/hook", "event_types": ["*"]}),
        ),
        (
            "ftp url",
            json!({"name": "x", "url": "ftp://example.com/x", "event_types": ["*"]}),
        ),
        ("missing url", json!({"name": "x", "event_types": ["*"]})),
        (
            "empty event_types",
            json!({"name": "x", "url": rx.url("/x"), "event_types": []}),
        ),
        (
            "missing event_types",
            json!({"name": "x", "url": rx.url("/x")}),
        ),
        (
            "non-string metadata",
            json!({"name": "x", "url": rx.url("/x"), "event_types": ["*"], "metadata": {"n": 1}}),
        ),
        (
            "short secret",
            json!({"name": "x", "url": rx.url("/x"), "event_types": ["*"], "secret": "whsec_AAAA"}),
        ),
        (
            "secret without prefix",
            json!({"name": "x", "url": rx.url("/x"), "event_types": ["*"], "secret": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}),
        ),
    ];
    for (what, body) in &bad_endpoints {
        let r = api.post("/v1/endpoints", body).await;
        assert_eq!(r.status, 400, "{what}: {body} -> {} {}", r.status, r.text);
        r.expect_error(400, "VALIDATION_ERROR");
    }
    let r = api
        .post_raw("/v1/endpoints", r#"{"name": "x", "url": "#, &[])
        .await;
    r.expect_error(400, "VALIDATION_ERROR");
    let r = api
        .patch(&format!("/v1/endpoints/{ep_id}"), &json!({"url": "nope"}))
        .await;
    r.expect_error(400, "VALIDATION_ERROR");
    let r = api
        .patch(
            &format!("/v1/endpoints/{ep_id}"),
            &json!({"event_types": []}),
        )
        .await;
    r.expect_error(400, "VALIDATION_ERROR");
    assert_eq!(
        endpoint_count(api).await,
        1,
        "rejected endpoint requests changed nothing"
    );
    let ep = api
        .get(&format!("/v1/endpoints/{ep_id}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        ep["url"],
        rx.url("/ok"),
        "rejected PATCH changed the endpoint: {ep}"
    );
    assert_eq!(ep["event_types"], json!(["*"]));

    // Query parameters.
    let path = format!("/v1/endpoints/{ep_id}/deliveries");
    for q in [
        "status=bogus",
        "limit=0",
        "limit=501",
        "limit=abc",
        "from=yesterday",
    ] {
        let r = api.get(&format!("{path}?{q}")).await;
        assert_eq!(r.status, 400, "?{q} -> {} {}", r.status, r.text);
        r.expect_error(400, "VALIDATION_ERROR");
    }
    api.get("/v1/endpoints?limit=0")
        .await
        .expect_error(400, "VALIDATION_ERROR");
    // Good query parameters are fine.
    for q in [
        "status=failed",
        "limit=1",
        "limit=500",
        "from=0",
        "from=2020-01-01T00:00:00.000Z",
    ] {
        api.get(&format!("{path}?{q}")).await.expect(200);
    }

    // Only the one valid event was delivered.
    rx.wait_for(1, secs(10)).await;
    settle(millis(800)).await;
    let reqs = rx.requests();
    assert_eq!(
        reqs.len(),
        1,
        "rejected events must not be delivered:\n{}",
        describe(&reqs)
    );
    assert_eq!(reqs[0].webhook_id(), long_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unauthorized() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let (ep_id, _, _) = api
        .create_endpoint(json!({"name": "all", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;

    let wrong = [
        ("no key", api.without_key()),
        ("wrong key", api.with_key("wrong-key-0123456789")),
        (
            "key prefix",
            api.with_key(&ADMIN_KEY[..ADMIN_KEY.len() - 1]),
        ),
        (
            "not bearer",
            api.with_authorization(&format!("Basic {ADMIN_KEY}")),
        ),
        ("empty bearer", api.with_authorization("Bearer ")),
    ];
    let ev =
        serde_json::to_vec(&json!({"type": "job.created", "id": "unauth", "data": {}})).unwrap();
    let ep = serde_json::to_vec(&json!({"name": "x", "url": rx.url("/x"), "event_types": ["*"]}))
        .unwrap();
    for (what, client) in &wrong {
        let calls: Vec<(Method, String, Option<&[u8]>)> = vec![
            (Method::POST, "/v1/events".into(), Some(&ev)),
            (Method::POST, "/v1/endpoints".into(), Some(&ep)),
            (Method::GET, "/v1/endpoints".into(), None),
            (Method::GET, format!("/v1/endpoints/{ep_id}"), None),
            (Method::DELETE, format!("/v1/endpoints/{ep_id}"), None),
            (Method::GET, "/v1/event-types".into(), None),
            (Method::GET, "/v1/events/unauth".into(), None),
        ];
        for (m, p, b) in calls {
            let r = client.send(m.clone(), &p, b, &[]).await;
            assert_eq!(r.status, 401, "{what}: {m} {p} -> {} {}", r.status, r.text);
            r.expect_error(401, "UNAUTHORIZED");
        }
    }
    // Probes are open.
    api.without_key().get("/health").await.expect(200);
    api.without_key().get("/metrics").await.expect(200);

    // Nothing changed.
    assert_eq!(endpoint_count(api).await, 1);
    api.get(&format!("/v1/endpoints/{ep_id}")).await.expect(200);
    api.get("/v1/events/unauth")
        .await
        .expect_error(404, "NOT_FOUND");
    settle(millis(800)).await;
    assert_eq!(rx.count(), 0, "{}", describe(&rx.requests()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forbidden_private_targets() {
    let (_dir, _rx, d) = setup(|c| c.set("sender", "allow_private_targets", "false")).await;
    let api = &d.api;
    for url in [
        "http://127.0.0.1:1/x",
        "http://127.8.9.10/x",
        "http://10.0.0.1/x",
        "http://172.16.5.4/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/x",
        "http://0.0.0.0/x",
    ] {
        let r = api
            .post(
                "/v1/endpoints",
                &json!({"name": "private", "url": url, "event_types": ["*"]}),
            )
            .await;
        assert_eq!(r.status, 403, "{url} -> {} {}", r.status, r.text);
        r.expect_error(403, "FORBIDDEN");
    }
    assert_eq!(
        endpoint_count(api).await,
        0,
        "forbidden endpoints were stored"
    );

    // A public address is accepted; moving it to a private one by PATCH is forbidden too.
    let (id, _, _) = api
        .create_endpoint(
            json!({"name": "public", "url": "http://1.1.1.1/hook", "event_types": ["*"]}),
        )
        .await;
    let r = api
        .patch(
            &format!("/v1/endpoints/{id}"),
            &json!({"url": "http://127.0.0.1:1/x"}),
        )
        .await;
    r.expect_error(403, "FORBIDDEN");
    let ep = api
        .get(&format!("/v1/endpoints/{id}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(ep["url"], "http://1.1.1.1/hook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn not_found() {
    let (_dir, _rx, d) = setup(|c| c).await;
    let api = &d.api;
    let cases: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/v1/endpoints/ep_nope", None),
        (
            Method::PATCH,
            "/v1/endpoints/ep_nope",
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, "/v1/endpoints/ep_nope", None),
        (
            Method::POST,
            "/v1/endpoints/ep_nope/rotate-secret",
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/endpoints/ep_nope/test",
            Some(json!({"event_type": "job.created"})),
        ),
        (Method::GET, "/v1/endpoints/ep_nope/deliveries", None),
        (Method::GET, "/v1/deliveries/dlv_nope", None),
        (
            Method::POST,
            "/v1/deliveries/dlv_nope/retry",
            Some(json!({})),
        ),
        (Method::GET, "/v1/events/evt_nope", None),
        (Method::GET, "/v1/no-such-route", None),
        (Method::POST, "/v1/no-such-route", Some(json!({}))),
        (Method::GET, "/no-such-route", None),
        // A known route, a method it does not have: no such route either, in the envelope.
        (Method::PUT, "/v1/endpoints", Some(json!({}))),
        (Method::DELETE, "/v1/events/evt_nope", None),
    ];
    for (m, p, b) in cases {
        let body = b.map(|v| serde_json::to_vec(&v).unwrap());
        let r = api.send(m.clone(), p, body.as_deref(), &[]).await;
        assert_eq!(r.status, 404, "{m} {p} -> {} {}", r.status, r.text);
        r.expect_error(404, "NOT_FOUND");
    }
    // A path that is not UTF-8 is bad input, in the envelope too.
    api.get("/v1/events/%FF%FE")
        .await
        .expect_error(400, "VALIDATION_ERROR");
    // A deleted endpoint is gone.
    let (id, _, _) = api
        .create_endpoint(json!({"name": "x", "url": "http://127.0.0.1:9/x", "event_types": ["*"]}))
        .await;
    api.delete(&format!("/v1/endpoints/{id}")).await.expect(204);
    api.get(&format!("/v1/endpoints/{id}"))
        .await
        .expect_error(404, "NOT_FOUND");
    api.delete(&format!("/v1/endpoints/{id}"))
        .await
        .expect_error(404, "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payload_too_large() {
    let (_dir, rx, d) = setup(|c| c.set("ingest", "max_body_bytes", "1024")).await;
    let api = &d.api;
    api.create_endpoint(json!({"name": "all", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;

    let big = json!({"type": "job.created", "id": "too-big", "data": {"blob": "x".repeat(2048)}});
    let r = api.post("/v1/events", &big).await;
    r.expect_error(413, "PAYLOAD_TOO_LARGE");
    let batch =
        json!([{"type": "job.created", "id": "too-big-batch", "data": {"blob": "x".repeat(2048)}}]);
    let r = api.post("/v1/events/batch", &batch).await;
    r.expect_error(413, "PAYLOAD_TOO_LARGE");
    api.get("/v1/events/too-big")
        .await
        .expect_error(404, "NOT_FOUND");
    api.get("/v1/events/too-big-batch")
        .await
        .expect_error(404, "NOT_FOUND");

    // Under the limit is fine.
    let small = json!({"type": "job.created", "id": "small", "data": {"blob": "x".repeat(500)}});
    api.post("/v1/events", &small).await.expect(202);
    let reqs = rx.wait_for(1, secs(10)).await;
    settle(millis(800)).await;
    assert_eq!(rx.count(), 1, "{}", describe(&rx.requests()));
    assert_eq!(reqs[0].webhook_id(), "small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limited() {
    let (_dir, rx, d) = setup(|c| c.set("ingest", "rate_limit", "2")).await;
    let api = &d.api;
    api.create_endpoint(json!({"name": "all", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;

    let mut accepted = Vec::new();
    let mut limited = 0;
    let start = Instant::now();
    for i in 0..10 {
        let r = api
            .post(
                "/v1/events",
                &json!({"type": "job.created", "id": format!("rl-{i}"), "data": {}}),
            )
            .await;
        match r.status {
            202 => accepted.push(format!("rl-{i}")),
            429 => {
                r.expect_error(429, "RATE_LIMITED");
                let ra = r
                    .header("retry-after")
                    .unwrap_or_else(|| panic!("429 without Retry-After: {r:?}"));
                let wait: u64 = ra
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {ra:?}"));
                assert!((1..=60).contains(&wait), "Retry-After {wait}");
                limited += 1;
                api.get(&format!("/v1/events/rl-{i}"))
                    .await
                    .expect_error(404, "NOT_FOUND");
            }
            s => panic!("unexpected {s}: {}", r.text),
        }
    }
    let elapsed = start.elapsed();
    assert!(
        limited >= 1,
        "10 events in {elapsed:?} at 2/s: none limited"
    );
    assert!(!accepted.is_empty(), "nothing accepted at all");
    // Another tenant has its own budget.
    let other = api
        .post(
            "/v1/events",
            &json!({"type": "job.created", "tenant": "other", "id": "rl-other", "data": {}}),
        )
        .await;
    other.expect(202);

    rx.wait_for(accepted.len(), secs(10)).await;
    settle(millis(800)).await;
    let mut got: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.webhook_id().to_string())
        .collect();
    got.sort();
    accepted.sort();
    assert_eq!(got, accepted, "exactly the accepted events are delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unavailable_while_draining() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let cfg = Config::new(dir.path())
        .set("shutdown", "grace", "\"10s\"")
        .set("sender", "timeout", "\"8s\"");
    let mut d = Daemon::start(dir.path(), &cfg).await;
    rx.script(
        "/slow",
        Reply::Slow {
            delay: secs(3),
            status: 200,
        },
    );
    d.api
        .create_endpoint(json!({"name": "slow", "url": rx.url("/slow"), "event_types": ["*"]}))
        .await;
    let ev = d
        .api
        .post_event(json!({"type": "job.created", "id": "slow-1", "data": {}}))
        .await;
    assert_eq!(ev["id"], "slow-1");
    let reqs = rx.wait_for_path("/slow", 1, secs(10)).await;
    let arrived = reqs[0].at;

    // A connection opened before the signal.
    d.api.get("/health").await.expect(200);
    let term_at = Instant::now();
    d.proc.sigterm();

    // Within about a second the daemon answers 503 UNAVAILABLE.
    let deadline = Instant::now() + millis(1500);
    let health = loop {
        match d
            .api
            .without_key()
            .try_send(Method::GET, "/health", None, &[])
            .await
        {
            Ok(r) if r.status == 503 => break r,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "GET /health while draining: want 503, last got {other:?}\n{}",
                    d.proc.dump_logs()
                );
            }
        }
        settle(millis(50)).await;
    };
    health.expect_error(503, "UNAVAILABLE");
    assert!(
        health.header("retry-after").is_some(),
        "503 without Retry-After"
    );
    let r = d
        .api
        .try_send(
            Method::POST,
            "/v1/events",
            Some(br#"{"type":"job.created","id":"during-drain","data":{}}"#),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("POST /v1/events while draining: {e}"));
    r.expect_error(503, "UNAVAILABLE");
    assert!(r.header("retry-after").is_some(), "503 without Retry-After");

    // It waits for the slow delivery, then exits 0.
    let st = d.proc.expect_exit(secs(12)).await;
    let exited = Instant::now();
    assert_eq!(
        st.code(),
        Some(0),
        "exit status {st}\n{}",
        d.proc.dump_logs()
    );
    assert!(
        exited >= arrived + millis(2900),
        "exited {:?} after the slow request arrived, before it could finish (3 s)",
        exited - arrived
    );
    assert!(exited - term_at < secs(10), "took the whole grace period");

    // After a restart: the slow delivery is recorded as delivered, the rejected event was
    // never stored, and nothing is sent again.
    drop(d);
    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let ds = d.api.wait_event_deliveries("slow-1", 1, secs(5)).await;
    assert_eq!(ds[0]["status"], "delivered", "{ds:?}");
    d.api
        .get("/v1/events/during-drain")
        .await
        .expect_error(404, "NOT_FOUND");
    settle(millis(800)).await;
    assert_eq!(rx.count(), 1, "{}", describe(&rx.requests()));
}
