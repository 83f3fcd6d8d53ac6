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

    // Three events stored (key-1, its twin in tenant "other", order-42); exactly one delivery
    // per event of the tenant with an endpoint.
    let id1 = e1["id"].as_str().unwrap().to_string();
    let m = wait_fanned_out(api, 3).await;
    assert_eq!(m.get("hookd_events_ingested_total"), 3, "{m:?}");
    assert_eq!(m.get("hookd_deliveries_created_total"), 2, "{m:?}");
    rx.wait_until("key-1 and order-42 delivered", PATIENCE, |r| {
        r.iter().any(|x| x.webhook_id() == id1) && r.iter().any(|x| x.webhook_id() == "order-42")
    })
    .await;
    wait_attempts(api, 2).await;
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

    let reqs = rx.wait_for(3, PATIENCE).await;
    let mut got: Vec<String> = reqs.iter().map(|r| r.webhook_id().to_string()).collect();
    got.sort();
    assert_eq!(got, uniq);
    let items: Vec<(&str, &Recorded)> = reqs.iter().map(|r| (secret.as_str(), r)).collect();
    verify_with_python(&items);

    // All or nothing: a bad item rejects the batch, naming its index and field.
    let ok = json!({"type": "job.created", "data": {}});
    let cases = [
        (1, json!({"type": "no.such.type", "data": {}}), "type"),
        (2, json!({"data": {}}), "type"),
        (0, json!({"type": 5, "data": {}}), "type"),
        (
            1,
            json!({"type": "job.created", "id": "has space", "data": {}}),
            "id",
        ),
        (2, json!({"type": "job.created", "data": [1]}), "data"),
        (
            0,
            json!({"type": "job.created", "tenant": "", "data": {}}),
            "tenant",
        ),
    ];
    let mut wrong = Vec::new();
    for (index, bad, field) in cases {
        let mut items = vec![ok.clone(), ok.clone(), ok.clone()];
        for (i, item) in items.iter_mut().enumerate() {
            item["id"] = json!(format!("bad-batch-{i}"));
        }
        items[index] = bad.clone();
        let r = api.post("/v1/events/batch", &Value::Array(items)).await;
        r.expect_error(400, "VALIDATION_ERROR");
        let msg = r.body["error"]["message"].as_str().unwrap();
        let prefix = format!("events[{index}]: ");
        if !(msg.starts_with(&prefix) && msg.contains(&format!("`{field}`"))) {
            wrong.push(format!(
                "{bad} -> {msg:?}, want {prefix:?} naming `{field}`"
            ));
        }
        for id in ["bad-batch-0", "bad-batch-1", "bad-batch-2"] {
            api.get(&format!("/v1/events/{id}"))
                .await
                .expect_error(404, "NOT_FOUND");
        }
    }
    assert!(
        wrong.is_empty(),
        "messages that miss the index or the field:\n{}",
        wrong.join("\n")
    );
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

    // Only the first batch was stored.
    let m = wait_fanned_out(api, 3).await;
    assert_eq!(m.get("hookd_events_ingested_total"), 3, "{m:?}");
    wait_attempts(api, 3).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_replay_survives_kill9() {
    let (dir, rx, mut d) = setup(|c| c).await;
    let (ep, _, _) = d
        .api
        .create_endpoint(json!({"name": "all", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;
    let body = r#"{"type":"job.created","data":{"job":1}}"#;
    let key = [("idempotency-key", "survives")];
    let original = d
        .api
        .post_raw("/v1/events", body, &key)
        .await
        .expect(202)
        .clone();
    let client_id = d
        .api
        .post_event(json!({"type": "job.completed", "id": "order-7", "data": {"v": 1}}))
        .await;
    // Both delivered, and their outcomes flushed: a restart sends neither again.
    rx.wait_for(2, PATIENCE).await;
    wait_endpoint_settled(&d.api, &ep).await;
    d.proc.kill9();
    drop(d);

    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let r = d.api.post_raw("/v1/events", body, &key).await;
    assert_eq!(
        r.expect(202),
        &original,
        "the replay returns the original event"
    );
    assert_eq!(r.header("idempotent-replayed").as_deref(), Some("true"));
    let r = d
        .api
        .post(
            "/v1/events",
            &json!({"type": "job.completed", "id": "order-7", "data": {"v": 2}}),
        )
        .await;
    assert_eq!(r.expect(202), &client_id);
    assert_eq!(r.header("idempotent-replayed").as_deref(), Some("true"));
    d.api
        .post_raw(
            "/v1/events",
            r#"{"type":"job.created","data":{"job":2}}"#,
            &key,
        )
        .await
        .expect_error(409, "CONFLICT");

    // Nothing new was stored or sent: a later event arrives, and only it.
    deliver_sentinel(
        &d.api,
        &rx,
        "/ok",
        json!({"type": "job.created", "id": "sentinel", "data": {}}),
    )
    .await;
    let m = wait_fanned_out(&d.api, 1).await;
    assert_eq!(m.get("hookd_events_ingested_total"), 1, "{m:?}");
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3, "{}", describe(&reqs));
    assert_eq!(reqs[2].webhook_id(), "sentinel");
}
