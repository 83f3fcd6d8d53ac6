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

    // Only the one valid event was stored and delivered. It was posted last: once it arrived,
    // fan-out had seen everything stored before it.
    rx.wait_for(1, PATIENCE).await;
    let m = wait_fanned_out(api, 1).await;
    assert_eq!(m.get("hookd_events_ingested_total"), 1, "{m:?}");
    wait_attempts(api, 1).await;
    let reqs = rx.requests();
    assert_eq!(
        reqs.len(),
        1,
        "rejected events must not be delivered:\n{}",
        describe(&reqs)
    );
    assert_eq!(reqs[0].webhook_id(), long_id);
}

/// `(method, path)` of every route docs/API.md names, with `{id}` left in.
fn documented_routes() -> Vec<(Method, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md"))
        .expect("read docs/API.md");
    let mut out = Vec::new();
    for chunk in doc.split('`').skip(1).step_by(2) {
        let Some((method, rest)) = chunk.split_once(' ') else {
            continue;
        };
        let method = match method {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            _ => continue,
        };
        if !rest.starts_with('/') {
            continue; // `POST <url>`: what a receiver gets.
        }
        let path = rest.split(['?', ' ']).next().unwrap().to_owned();
        if !out.contains(&(method.clone(), path.clone())) {
            out.push((method, path));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unauthorized() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let (ep_id, secret, _) = api
        .create_endpoint(json!({"name": "all", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;
    api.post_event(json!({"type": "job.created", "id": "first", "data": {}}))
        .await;
    let ds = api.wait_event_deliveries("first", 1, PATIENCE).await;
    let dlv_id = ds[0]["id"].as_str().unwrap().to_owned();
    api.wait_delivery_status(&dlv_id, "delivered", PATIENCE)
        .await;

    // Every /v1 route of the API document, with real ids and bodies that would be accepted.
    let routes: Vec<(Method, String)> = documented_routes()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/v1/"))
        .collect();
    assert!(
        routes.len() >= 14,
        "docs/API.md names fewer /v1 routes than expected: {routes:?}"
    );
    let id_for = |path: &str| {
        if path.starts_with("/v1/endpoints/") {
            ep_id.clone()
        } else if path.starts_with("/v1/deliveries/") {
            dlv_id.clone()
        } else {
            "unauth".to_owned()
        }
    };
    let body_for = |m: &Method, path: &str| -> Option<Vec<u8>> {
        let v = match path {
            _ if *m == Method::GET || *m == Method::DELETE => return None,
            "/v1/events" => json!({"type": "job.created", "id": "unauth", "data": {}}),
            "/v1/events/batch" => json!([{"type": "job.created", "id": "unauth", "data": {}}]),
            "/v1/endpoints" => json!({"name": "x", "url": rx.url("/x"), "event_types": ["*"]}),
            p if p.ends_with("/test") => json!({"event_type": "job.created"}),
            p if *m == Method::PATCH && p.starts_with("/v1/endpoints/") => {
                json!({"url": rx.url("/patched")})
            }
            _ => json!({}),
        };
        Some(serde_json::to_vec(&v).unwrap())
    };

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
    for (what, client) in &wrong {
        for (m, route) in &routes {
            let p = route.replace("{id}", &id_for(route));
            let b = body_for(m, route);
            let r = client.send(m.clone(), &p, b.as_deref(), &[]).await;
            assert_eq!(r.status, 401, "{what}: {m} {p} -> {} {}", r.status, r.text);
            r.expect_error(401, "UNAUTHORIZED");
        }
    }
    // Probes are open.
    api.without_key().get("/health").await.expect(200);
    api.without_key().get("/metrics").await.expect(200);

    // Nothing changed: the endpoint is there with its url, filter and secret, nothing was
    // stored, retried or test-sent. A later event, delivered, proves fan-out and the shards had
    // their chance.
    assert_eq!(endpoint_count(api).await, 1);
    let ep = api
        .get(&format!("/v1/endpoints/{ep_id}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(ep["url"], rx.url("/ok"), "{ep}");
    api.get("/v1/events/unauth")
        .await
        .expect_error(404, "NOT_FOUND");
    deliver_sentinel(
        api,
        &rx,
        "/ok",
        json!({"type": "job.created", "id": "sentinel", "data": {}}),
    )
    .await;
    let m = wait_fanned_out(api, 2).await;
    assert_eq!(m.get("hookd_events_ingested_total"), 2, "{m:?}");
    wait_attempts(api, 2).await;
    let reqs = rx.requests();
    let ids: Vec<&str> = reqs.iter().map(Recorded::webhook_id).collect();
    assert_eq!(ids, ["first", "sentinel"], "{}", describe(&reqs));
    assert_signed(&reqs[1], &secret);
    assert_eq!(
        api.delivery(&dlv_id).await["attempts"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
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
    // A method the route does not have names the ones it has in `Allow`.
    for (m, p, allowed) in [
        (Method::PUT, "/v1/endpoints", &["GET", "POST"][..]),
        (Method::DELETE, "/v1/events/evt_nope", &["GET"][..]),
        (Method::GET, "/v1/deliveries/dlv_nope/retry", &["POST"][..]),
        (
            Method::POST,
            "/v1/endpoints/ep_nope",
            &["GET", "PATCH", "DELETE"][..],
        ),
    ] {
        let r = api.send(m.clone(), p, None, &[]).await;
        r.expect_error(404, "NOT_FOUND");
        let allow = r
            .header("allow")
            .unwrap_or_else(|| panic!("{m} {p}: no Allow header: {r:?}"));
        let mut got: Vec<&str> = allow
            .split(',')
            .map(str::trim)
            .filter(|x| *x != "HEAD")
            .collect();
        got.sort_unstable();
        let mut want = allowed.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{m} {p}: Allow: {allow}");
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

    // Under the limit is fine, and is the only event stored.
    let small = json!({"type": "job.created", "id": "small", "data": {"blob": "x".repeat(500)}});
    api.post("/v1/events", &small).await.expect(202);
    let reqs = rx.wait_for(1, PATIENCE).await;
    let m = wait_fanned_out(api, 1).await;
    assert_eq!(m.get("hookd_events_ingested_total"), 1, "{m:?}");
    wait_attempts(api, 1).await;
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

    // The batch route is limited too. A batch larger than a second's budget gets in while the
    // budget is full and leaves the tenant in debt: the next batch answers 429, stores none of
    // its events, and its Retry-After covers the debt (19 events owed at 2/s: about 10 s).
    let batch = |prefix: &str, n: usize| {
        let items = (0..n)
            .map(|i| json!({"type": "job.created", "tenant": "bulk", "id": format!("{prefix}-{i}"), "data": {}}))
            .collect();
        Value::Array(items)
    };
    api.post("/v1/events/batch", &batch("bulk", 20))
        .await
        .expect(202);
    let r = api.post("/v1/events/batch", &batch("bulk-late", 1)).await;
    r.expect_error(429, "RATE_LIMITED");
    let ra: u64 = r
        .header("retry-after")
        .expect("429 without Retry-After")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(
        ra >= 2,
        "Retry-After {ra} s does not cover a debt of 18 events at 2/s"
    );
    api.get("/v1/events/bulk-late-0")
        .await
        .expect_error(404, "NOT_FOUND");

    // Exactly the accepted events were stored (rl-other and bulk have no endpoint) and
    // delivered.
    let m = wait_fanned_out(api, accepted.len() as u64 + 21).await;
    assert_eq!(
        m.get("hookd_deliveries_created_total"),
        accepted.len() as u64,
        "{m:?}"
    );
    rx.wait_for(accepted.len(), PATIENCE).await;
    wait_attempts(api, accepted.len() as u64).await;
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
    // The grace period is far longer than the test may last: the daemon can only exit in time
    // by seeing the slow delivery finish, not by giving up on it.
    let cfg = Config::new(dir.path())
        .set("shutdown", "grace", "\"10m\"")
        .set("sender", "timeout", "\"10m\"");
    let mut d = Daemon::start(dir.path(), &cfg).await;
    // Long enough to see the daemon draining while the delivery is in flight.
    rx.script(
        "/slow",
        Reply::Slow {
            delay: secs(6),
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
    let reqs = rx.wait_for_path("/slow", 1, PATIENCE).await;
    let arrived = reqs[0].at;

    // A connection opened before the signal.
    d.api.get("/health").await.expect(200);
    d.proc.sigterm();

    // While the delivery is in flight the daemon answers 503 UNAVAILABLE.
    let probe = d.api.without_key();
    let health = wait_for(
        || async {
            match probe.try_send(Method::GET, "/health", None, &[]).await {
                Ok(r) if r.status == 503 => Ok(r),
                other => Err(format!("{other:?}")),
            }
        },
        "GET /health to answer 503 while draining",
        PATIENCE,
    )
    .await;
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

    // It waits for the slow delivery (not for its ten-minute grace), then exits 0.
    let st = d.proc.expect_exit(PATIENCE).await;
    let exited = Instant::now();
    assert_eq!(
        st.code(),
        Some(0),
        "exit status {st}\n{}",
        d.proc.dump_logs()
    );
    assert!(
        exited >= arrived + millis(5900),
        "exited {:?} after the slow request arrived, before it could finish (6 s)",
        exited - arrived
    );

    // After a restart: the slow delivery is recorded as delivered, the rejected event was
    // never stored, and nothing is sent again: a later event to the same endpoint arrives
    // alone.
    drop(d);
    rx.script("/slow", Reply::Status(204));
    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let ds = d.api.wait_event_deliveries("slow-1", 1, PATIENCE).await;
    assert_eq!(ds[0]["status"], "delivered", "{ds:?}");
    d.api
        .get("/v1/events/during-drain")
        .await
        .expect_error(404, "NOT_FOUND");
    deliver_sentinel(
        &d.api,
        &rx,
        "/slow",
        json!({"type": "job.created", "id": "sentinel", "data": {}}),
    )
    .await;
    wait_fanned_out(&d.api, 1).await;
    wait_attempts(&d.api, 1).await;
    let ids: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.webhook_id().to_owned())
        .collect();
    assert_eq!(ids, ["slow-1", "sentinel"], "{}", describe(&rx.requests()));
}
