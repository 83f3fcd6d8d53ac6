//! End-to-end ingest: idempotency keys, client ids, batches.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{json, Value};

fn ids_delivered(rx: &Receiver) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rx.requests() {
        *m.entry(r.webhook_id().to_string()).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_key_and_client_id() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    api.create_endpoint(json!({"name": "all", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;

    // Same Idempotency-Key, same body: the original event, replayed.
    let body = r#"{"type":"job.created","data":{"job":1}}"#;
    let r1 = api
        .post_raw("/v1/events", body, &[("idempotency-key", "key-1")])
        .await;
    let e1 = r1.expect(202).clone();
    assert_ne!(
        r1.header("idempotent-replayed").as_deref(),
        Some("true"),
        "first post is not a replay"
    );
    let r2 = api
        .post_raw("/v1/events", body, &[("idempotency-key", "key-1")])
        .await;
    let e2 = r2.expect(202).clone();
    assert_eq!(r2.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(e1, e2, "the replay returns the original event");

    // Same key, different body: conflict, nothing stored.
    let r3 = api
        .post_raw(
            "/v1/events",
            r#"{"type":"job.created","data":{"job":2}}"#,
            &[("idempotency-key", "key-1")],
        )
        .await;
    r3.expect_error(409, "CONFLICT");

    // The same key in another tenant is another request.
    let r4 = api
        .post_raw(
            "/v1/events",
            r#"{"type":"job.created","tenant":"other","data":{"job":1}}"#,
            &[("idempotency-key", "key-1")],
        )
        .await;
    let e4 = r4.expect(202).clone();
    assert_ne!(r4.header("idempotent-replayed").as_deref(), Some("true"));
    assert_ne!(e4["id"], e1["id"]);

    // Repeated client id: the original, replayed, even with other data.
    let c1 = api
        .post(
            "/v1/events",
            &json!({"type": "job.completed", "id": "order-42", "data": {"v": 1}}),
        )
        .await;
    let c1b = c1.expect(202).clone();
    assert_eq!(c1b["id"], "order-42");
    let c2 = api
        .post(
            "/v1/events",
            &json!({"type": "job.completed", "id": "order-42", "data": {"v": 1}}),
        )
        .await;
    assert_eq!(c2.expect(202), &c1b);
    assert_eq!(c2.header("idempotent-replayed").as_deref(), Some("true"));
    let c3 = api
        .post(
            "/v1/events",
            &json!({"type": "job.completed", "id": "order-42", "data": {"v": 2}}),
        )
        .await;
    assert_eq!(
        c3.expect(202),
        &c1b,
        "a repeated id answers the original event"
    );
    assert_eq!(c3.header("idempotent-replayed").as_deref(), Some("true"));

    // The same id in another tenant: conflict.
    let c4 = api
        .post(
            "/v1/events",
            &json!({"type": "job.completed", "id": "order-42", "tenant": "other", "data": {}}),
        )
        .await;
    c4.expect_error(409, "CONFLICT");
    let stored = api.event("order-42").await;
    assert_eq!(stored["tenant"], "default");
    assert_eq!(stored["data"], json!({"v": 1}));

    // Exactly one delivery per event.
    let id1 = e1["id"].as_str().unwrap().to_string();
    rx.wait_until("key-1 and order-42 delivered", secs(10), |r| {
        r.iter().any(|x| x.webhook_id() == id1) && r.iter().any(|x| x.webhook_id() == "order-42")
    })
    .await;
    settle(millis(1000)).await;
    let got = ids_delivered(&rx);
    assert_eq!(got.get(&id1), Some(&1), "{got:?}");
    assert_eq!(got.get("order-42"), Some(&1), "{got:?}");
    // The other tenant has no endpoint: nothing for it.
    assert_eq!(got.len(), 2, "{got:?}\n{}", describe(&rx.requests()));
    let dl = api.event(&id1).await;
    assert_eq!(dl["deliveries"].as_array().unwrap().len(), 1, "{dl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_ingest() {
    let (_dir, rx, d) = setup(|c| c.set("ingest", "max_batch", "5")).await;
    let api = &d.api;
    let (ep_id, secret, _) = api
        .create_endpoint(json!({"name": "all", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;

    let items = json!([
        {"type": "volume.attached", "data": {"i": 0}},
        {"type": "volume.detached", "data": {"i": 1}, "id": "batch-1"},
        {"type": "deployment.created", "data": {"i": 2}, "tenant": "default"},
    ]);
    let r = api.post("/v1/events/batch", &items).await;
    let body = r.expect(202).clone();
    let evs = body["data"].as_array().expect("data list").clone();
    assert_eq!(evs.len(), 3, "{body}");
    let types: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec!["volume.attached", "volume.detached", "deployment.created"],
        "request order"
    );
    assert_eq!(evs[1]["id"], "batch-1");
    let ids: Vec<String> = evs
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 3, "{ids:?}");
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["data"], json!({"i": i}));
        assert_rfc3339_ms(&e["created_at"]);
    }

    let reqs = rx.wait_for(3, secs(10)).await;
    let mut got: Vec<String> = reqs.iter().map(|r| r.webhook_id().to_string()).collect();
    got.sort();
    assert_eq!(got, uniq);
    let items: Vec<(&str, &Recorded)> = reqs.iter().map(|r| (secret.as_str(), r)).collect();
    verify_with_python(&items);

    // All or nothing: a bad item rejects the batch, naming its index.
    let bad = json!([
        {"type": "job.created", "id": "bad-batch-0", "data": {}},
        {"type": "no.such.type", "id": "bad-batch-1", "data": {}},
        {"type": "job.created", "id": "bad-batch-2", "data": {}},
    ]);
    let r = api.post("/v1/events/batch", &bad).await;
    r.expect_error(400, "VALIDATION_ERROR");
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains('1'), "message must name index 1: {msg:?}");
    for id in ["bad-batch-0", "bad-batch-1", "bad-batch-2"] {
        api.get(&format!("/v1/events/{id}"))
            .await
            .expect_error(404, "NOT_FOUND");
    }
    // Empty and oversized batches, and a non-array.
    api.post("/v1/events/batch", &json!([]))
        .await
        .expect_error(400, "VALIDATION_ERROR");
    let six: Vec<Value> = (0..6)
        .map(|i| json!({"type": "job.created", "id": format!("six-{i}"), "data": {}}))
        .collect();
    api.post("/v1/events/batch", &Value::Array(six))
        .await
        .expect_error(400, "VALIDATION_ERROR");
    api.get("/v1/events/six-0")
        .await
        .expect_error(404, "NOT_FOUND");
    api.post("/v1/events/batch", &json!({"type": "job.created"}))
        .await
        .expect_error(400, "VALIDATION_ERROR");

    settle(millis(800)).await;
    assert_eq!(
        rx.count(),
        3,
        "rejected batches deliver nothing:\n{}",
        describe(&rx.requests())
    );
    let dl = api
        .get(&format!("/v1/endpoints/{ep_id}/deliveries"))
        .await
        .expect(200)
        .clone();
    assert_eq!(dl["data"].as_array().unwrap().len(), 3, "{dl}");
}
