//! Promises of docs/API.md checked from outside: the counters of `/metrics`, the default page
//! size, PATCH of every endpoint field, manual retry, the response excerpt of an attempt.

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

const COUNTERS: [&str; 10] = [
    "hookd_events_ingested_total",
    "hookd_log_flushes_total",
    "hookd_outcome_flushes_total",
    "hookd_events_fanned_out_total",
    "hookd_deliveries_created_total",
    "hookd_attempts_total",
    "hookd_deliveries_succeeded_total",
    "hookd_attempts_failed_total",
    "hookd_deliveries_dead_lettered_total",
    "hookd_deliveries_in_flight",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_a_known_scenario() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let m = metrics(api).await;
    for name in COUNTERS {
        assert_eq!(m.get(name), 0, "{name} before anything happened: {m:?}");
    }
    rx.script("/down", Reply::Status(500));
    let (ok_ep, _, _) = api
        .create_endpoint(json!({"name": "ok", "url": rx.url("/ok"), "event_types": ["job.*"]}))
        .await;
    let (down_ep, _, _) = api
        .create_endpoint(
            json!({"name": "down", "url": rx.url("/down"), "event_types": ["job.failed"]}),
        )
        .await;

    // Five events in four storing requests (one is a batch of two) and one replay:
    // m-1 -> ok; m-2 -> ok, down; m-3 -> nobody; m-4, m-5 -> ok.
    let first = r#"{"type":"job.created","id":"m-1","data":{}}"#;
    for _ in 0..2 {
        api.post_raw("/v1/events", first, &[("idempotency-key", "m-key")])
            .await
            .expect(202);
    }
    api.post_event(json!({"type": "job.failed", "id": "m-2", "data": {}}))
        .await;
    api.post_event(json!({"type": "instance.ready", "id": "m-3", "data": {}}))
        .await;
    api.post(
        "/v1/events/batch",
        &json!([
            {"type": "job.started", "id": "m-4", "data": {}},
            {"type": "job.started", "id": "m-5", "data": {}},
        ]),
    )
    .await
    .expect(202);

    wait_fanned_out(api, 5).await;
    wait_endpoint_settled(api, &ok_ep).await;
    let down = wait_endpoint_settled(api, &down_ep).await;
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(down[0]["status"], "dead_lettered", "{down:?}");
    // /ok: four attempts that succeed; /down: a first try and two retries, all failing.
    let m = wait_attempts(api, 7).await;
    let want = [
        ("hookd_events_ingested_total", 5),
        ("hookd_log_flushes_total", 4),
        ("hookd_events_fanned_out_total", 5),
        ("hookd_deliveries_created_total", 5),
        ("hookd_attempts_total", 7),
        ("hookd_deliveries_succeeded_total", 4),
        ("hookd_attempts_failed_total", 3),
        ("hookd_deliveries_dead_lettered_total", 1),
        ("hookd_deliveries_in_flight", 0),
    ];
    for (name, value) in want {
        assert_eq!(m.get(name), value, "{name}: {m:?}");
    }
    // Outcome-log records share flushes: at least one, at most one per record (seven attempts
    // and the fan-outs of four event-log records).
    let flushes = m.get("hookd_outcome_flushes_total");
    assert!((1..=11).contains(&flushes), "{m:?}");
    assert_eq!(rx.requests_to("/ok").len(), 4);
    assert_eq!(rx.requests_to("/down").len(), 3);
}

/// The ids in `v["data"]`.
fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data list: {v}"))
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads the list at `path` (51 items) without a `limit`: a default page of 50 with a cursor,
/// then the last one.
async fn assert_pages_of_50(api: &Api, path: &str) {
    let page = api.get(path).await.expect(200).clone();
    assert_eq!(ids(&page).len(), 50, "{path}: {page}");
    let cursor = page["next_cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("{path}: a full default page has a next_cursor: {page}"));
    let sep = if path.contains('?') { '&' } else { '?' };
    let rest = api
        .get(&format!("{path}{sep}cursor={cursor}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(ids(&rest).len(), 1, "{path}: {rest}");
    assert_eq!(rest["next_cursor"], Value::Null, "{path}: {rest}");
    let mut all = ids(&page);
    all.extend(ids(&rest));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 51, "{path}: pages overlap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_default_to_pages_of_50() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;

    for i in 0..51 {
        api.create_endpoint(json!({
            "name": format!("ep-{i}"),
            "tenant": "many",
            "url": rx.url("/never"),
            "event_types": ["job.created"],
        }))
        .await;
    }
    assert_pages_of_50(api, "/v1/endpoints?tenant=many").await;

    let (ep, _, _) = api
        .create_endpoint(json!({"name": "all", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;
    let batch: Vec<Value> = (0..51)
        .map(|i| json!({"type": "job.started", "id": format!("d-{i}"), "data": {}}))
        .collect();
    api.post("/v1/events/batch", &Value::Array(batch))
        .await
        .expect(202);
    wait_fanned_out(api, 51).await;
    assert_pages_of_50(api, &format!("/v1/endpoints/{ep}/deliveries")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patch_changes_each_field_and_only_updated_at() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let (id, secret, created) = api
        .create_endpoint(json!({
            "name": "before",
            "url": rx.url("/before"),
            "event_types": ["job.*"],
            "description": "old words",
            "metadata": {"team": "infra"},
        }))
        .await;
    let path = format!("/v1/endpoints/{id}");
    let changes = [
        ("name", json!("after")),
        ("url", json!(rx.url("/after"))),
        ("event_types", json!(["instance.ready", "gpu.*"])),
        ("enabled", json!(false)),
        ("description", json!("new words")),
        ("metadata", json!({"team": "ml", "tier": "gold"})),
        ("enabled", json!(true)),
    ];
    let mut expected = created.clone();
    expected
        .as_object_mut()
        .unwrap()
        .remove("secret")
        .expect("created endpoint has its secret");
    for (field, value) in changes {
        let before = api.get(&path).await.expect(200).clone();
        // Not a barrier: puts a clock millisecond between the last write and this one, so
        // `updated_at` must visibly move.
        tokio::time::sleep(millis(2)).await;
        let r = api.patch(&path, &json!({ field: value })).await;
        let after = r.expect(200).clone();
        expected[field] = value.clone();
        for (k, v) in expected.as_object().unwrap() {
            if k != "updated_at" {
                assert_eq!(&after[k], v, "PATCH {field}: {k} in {after}");
            }
        }
        assert!(
            after.get("secret").is_none(),
            "PATCH answers the secret: {after}"
        );
        assert!(
            unix_ms(&after["updated_at"]) > unix_ms(&before["updated_at"]),
            "PATCH {field} did not move updated_at: {before} -> {after}"
        );
        assert_eq!(after["created_at"], created["created_at"], "{after}");
        expected["updated_at"] = after["updated_at"].clone();
        let got = api.get(&path).await.expect(200).clone();
        for (k, v) in expected.as_object().unwrap() {
            assert_eq!(&got[k], v, "GET after PATCH {field}: {k} in {got}");
        }
    }

    // Deliveries follow the new url and filter, signed with the unchanged secret.
    api.post_event(json!({"type": "job.created", "id": "old-filter", "data": {}}))
        .await;
    api.post_event(json!({"type": "gpu.available", "id": "new-filter", "data": {}}))
        .await;
    let reqs = rx.wait_for_path("/after", 1, PATIENCE).await;
    assert_eq!(reqs[0].webhook_id(), "new-filter");
    verify_with_python(&[(&secret, &reqs[0])]);
    let m = wait_fanned_out(api, 2).await;
    assert_eq!(m.get("hookd_deliveries_created_total"), 1, "{m:?}");
    wait_endpoint_settled(api, &id).await;
    assert_eq!(rx.count(), 1, "{}", describe(&rx.requests()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manual_retry_sends_a_retrying_delivery_now_and_refuses_a_pending_one() {
    // A retry an hour away: only the manual retry can explain a second request within the test.
    let (_dir, rx, d) = setup(|c| {
        c.set("retry", "schedule", "[\"1h\"]")
            .set("sender", "timeout", "\"120s\"")
    })
    .await;
    let api = &d.api;
    rx.script(
        "/flaky",
        Reply::FailThenOk {
            fails: 1,
            fail_status: 503,
            ok_status: 200,
        },
    );
    rx.script(
        "/hold",
        Reply::Slow {
            delay: secs(600),
            status: 200,
        },
    );
    let (_, secret, _) = api
        .create_endpoint(
            json!({"name": "flaky", "url": rx.url("/flaky"), "event_types": ["job.*"]}),
        )
        .await;
    api.create_endpoint(
        json!({"name": "hold", "url": rx.url("/hold"), "event_types": ["instance.*"]}),
    )
    .await;

    api.post_event(json!({"type": "job.failed", "id": "later", "data": {}}))
        .await;
    let ds = api.wait_event_deliveries("later", 1, PATIENCE).await;
    let dlv = ds[0]["id"].as_str().unwrap().to_owned();
    let dv = api.wait_delivery_status(&dlv, "retrying", PATIENCE).await;
    let first_at = unix_ms(&dv["attempts"][0]["at"]);
    let scheduled = unix_ms(&dv["next_attempt_at"]);
    assert!(
        scheduled >= first_at + 3_600_000,
        "retry not an hour away: {dv}"
    );

    let r = api
        .post(&format!("/v1/deliveries/{dlv}/retry"), &json!({}))
        .await;
    let body = r.expect(202).clone();
    assert_eq!(body["id"], dlv.as_str(), "{body}");
    assert_eq!(body["status"], "retrying", "{body}");
    assert_eq!(body["next_attempt_at"], body["updated_at"], "{body}");
    assert!(unix_ms(&body["next_attempt_at"]) < scheduled, "{body}");
    let reqs = rx.wait_for_path("/flaky", 2, PATIENCE).await;
    assert_eq!(reqs[1].webhook_id(), "later");
    assert_eq!(reqs[1].status, 200);
    verify_with_python(&[(&secret, &reqs[1])]);
    let dv = api.wait_delivery_status(&dlv, "delivered", PATIENCE).await;
    assert_eq!(dv["attempts"].as_array().map(Vec::len), Some(2), "{dv}");
    assert_eq!(dv["next_attempt_at"], Value::Null, "{dv}");

    // A delivery whose first attempt is still in flight is pending: retrying it conflicts and
    // changes nothing.
    api.post_event(json!({"type": "instance.ready", "id": "held", "data": {}}))
        .await;
    rx.wait_for_path("/hold", 1, PATIENCE).await;
    let ds = api.wait_event_deliveries("held", 1, PATIENCE).await;
    let held = ds[0]["id"].as_str().unwrap().to_owned();
    let before = api.delivery(&held).await;
    assert_eq!(before["status"], "pending", "{before}");
    api.post(&format!("/v1/deliveries/{held}/retry"), &json!({}))
        .await
        .expect_error(409, "CONFLICT");
    assert_eq!(api.delivery(&held).await, before);
    assert_eq!(rx.requests_to("/hold").len(), 1);
}

/// An http receiver on 127.0.0.1 answering every request 200 with `body`; returns its URL.
async fn answering_with(body: Bytes) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_: http::Request<Incoming>| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(http::Response::new(Full::new(body))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}/big")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attempt_keeps_the_first_4_kib_of_the_response() {
    let (_dir, _rx, d) = setup(|c| c).await;
    let api = &d.api;
    let answer: String = (0..10 * 1024)
        .map(|i| char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[i % 36]))
        .collect();
    let url = answering_with(Bytes::from(answer.clone())).await;
    api.create_endpoint(json!({"name": "big", "url": url, "event_types": ["*"]}))
        .await;
    api.post_event(json!({"type": "job.created", "id": "big", "data": {}}))
        .await;
    let ds = api.wait_event_deliveries("big", 1, PATIENCE).await;
    let dlv = ds[0]["id"].as_str().unwrap();
    let dv = api.wait_delivery_status(dlv, "delivered", PATIENCE).await;
    let kept = dv["attempts"][0]["response_body"]
        .as_str()
        .unwrap_or_else(|| panic!("no response_body: {dv}"));
    assert_eq!(kept.len(), 4096, "{dv}");
    assert_eq!(kept, &answer[..4096]);
}
