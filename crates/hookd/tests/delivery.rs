//! End-to-end delivery: signatures, filters and tenants, retries, dead letters, manual retry.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

/// Posted as the `data` of an event: unusual key order, no whitespace, a number that a
/// re-serialisation would change. It must reach the receiver byte for byte.
const RAW_DATA: &str = r#"{"z":1,"a":{"b":[1,2]},"m":null,"n":1.50}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_is_signed_and_recorded() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;

    // Probes are open.
    let h = api.without_key().get("/health").await;
    assert_eq!(h.expect(200), &json!({"status": "ok"}));
    let m = api.without_key().get("/metrics").await;
    assert_eq!(m.status, 200, "GET /metrics: {}", m.text);
    for name in ["hookd_events_ingested_total", "hookd_log_flushes_total"] {
        assert!(m.text.contains(name), "metrics lack {name}:\n{}", m.text);
    }
    let types = api.get("/v1/event-types").await;
    let types = types.expect(200)["data"].as_array().unwrap().clone();
    assert!(types.contains(&json!("instance.ready")), "{types:?}");

    // Create the endpoint.
    let r = api
        .post(
            "/v1/endpoints",
            &json!({
                "name": "ready hook",
                "url": rx.url("/ok"),
                "event_types": ["instance.ready"],
                "metadata": {"team": "infra"},
            }),
        )
        .await;
    let ep = r.expect(201).clone();
    let ep_id = ep["id"].as_str().expect("endpoint id").to_string();
    let secret = ep["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("whsec_"), "secret {secret:?}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(&secret["whsec_".len()..])
        .expect("secret is whsec_ + base64");
    assert_eq!(key.len(), 32, "generated secret must be 32 random bytes");
    for k in [
        "id",
        "tenant",
        "name",
        "url",
        "description",
        "event_types",
        "enabled",
        "metadata",
        "created_at",
        "updated_at",
    ] {
        assert!(ep.get(k).is_some(), "endpoint lacks {k:?}: {ep}");
    }
    assert_eq!(ep["tenant"], "default");
    assert_eq!(ep["enabled"], true);
    assert_eq!(ep["url"], rx.url("/ok"));
    assert_eq!(ep["event_types"], json!(["instance.ready"]));
    assert_eq!(ep["metadata"], json!({"team": "infra"}));
    assert_rfc3339_ms(&ep["created_at"]);
    assert_rfc3339_ms(&ep["updated_at"]);

    let g = api.get(&format!("/v1/endpoints/{ep_id}")).await;
    let got = g.expect(200).clone();
    assert!(
        got.get("secret").is_none(),
        "GET endpoint returns the secret: {got}"
    );
    assert!(
        !g.text.contains(&secret),
        "GET endpoint leaks the secret: {}",
        g.text
    );
    assert_eq!(got["id"], ep_id.as_str());
    assert_eq!(got["stats"]["delivered"], 0, "{got}");

    let list = api.get("/v1/endpoints").await;
    assert!(
        !list.text.contains(&secret),
        "endpoint list leaks the secret: {}",
        list.text
    );
    let list = list.expect(200).clone();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["next_cursor"], Value::Null);

    // Post the event with its data as raw text.
    let raw = format!(r#"{{"type":"instance.ready","data":{RAW_DATA}}}"#);
    let r = api.post_raw("/v1/events", &raw, &[]).await;
    let ev = r.expect(202).clone();
    let ev_id = ev["id"].as_str().expect("event id").to_string();
    assert!(ev_id.starts_with("evt_"), "default event id {ev_id:?}");
    assert_eq!(ev["type"], "instance.ready");
    assert_eq!(ev["tenant"], "default");
    assert_eq!(ev["data"], serde_json::from_str::<Value>(RAW_DATA).unwrap());
    assert_rfc3339_ms(&ev["created_at"]);
    let created_at = ev["created_at"].as_str().unwrap().to_string();

    // The receiver gets it.
    let reqs = rx.wait_for_path("/ok", 1, PATIENCE).await;
    let req = &reqs[0];
    assert_eq!(req.method, "POST");
    assert!(
        req.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "content-type {:?}",
        req.header("content-type")
    );
    assert_eq!(req.webhook_id(), ev_id);
    let expected_body = format!(
        r#"{{"id":{},"type":"instance.ready","created_at":{},"data":{RAW_DATA}}}"#,
        serde_json::to_string(&ev_id).unwrap(),
        serde_json::to_string(&created_at).unwrap(),
    );
    assert_eq!(
        req.body_str(),
        expected_body,
        "delivered body must carry data byte for byte"
    );
    assert!(req.body_str().contains(RAW_DATA));
    assert!(req
        .header("webhook-signature")
        .unwrap_or("")
        .starts_with("v1,"));
    assert_signed(req, &secret);
    verify_with_python(&[(&secret, req)]);

    // The event shows the delivery as delivered.
    let delivery = wait_for(
        || async {
            let e = api.event(&ev_id).await;
            let ds = e["deliveries"].as_array().cloned().unwrap_or_default();
            assert!(ds.len() <= 1, "one endpoint, one delivery: {e}");
            if ds.len() == 1 && ds[0]["status"] == "delivered" {
                assert_eq!(e["id"], ev_id.as_str());
                assert_eq!(e["data"], serde_json::from_str::<Value>(RAW_DATA).unwrap());
                Ok(ds[0].clone())
            } else {
                Err(e.to_string())
            }
        },
        "the event to show a delivered delivery",
        PATIENCE,
    )
    .await;
    let dlv_id = delivery["id"].as_str().expect("delivery id").to_string();
    for k in [
        "id",
        "event_id",
        "endpoint_id",
        "tenant",
        "event_type",
        "status",
        "attempts",
        "created_at",
        "updated_at",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
    ] {
        assert!(
            delivery.get(k).is_some(),
            "delivery lacks {k:?}: {delivery}"
        );
    }
    assert_eq!(delivery["event_id"], ev_id.as_str());
    assert_eq!(delivery["endpoint_id"], ep_id.as_str());
    assert_eq!(delivery["event_type"], "instance.ready");
    assert_eq!(delivery["last_status_code"], 204);

    // The delivery with its attempt.
    let dv = api.delivery(&dlv_id).await;
    assert_eq!(dv["status"], "delivered");
    let attempts = dv["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("GET /v1/deliveries/{{id}} attempts must be a list: {dv}"));
    assert_eq!(attempts.len(), 1, "{dv}");
    let a = &attempts[0];
    assert_eq!(a["number"], 1, "{a}");
    assert_eq!(a["status_code"], 204, "{a}");
    assert_eq!(a["error"], Value::Null, "{a}");
    assert_rfc3339_ms(&a["at"]);
    assert!(a["latency_ms"].is_number(), "{a}");
    for k in ["error_detail", "response_body"] {
        assert!(a.get(k).is_some(), "attempt lacks {k:?}: {a}");
    }

    // Endpoint stats.
    let got = api.get(&format!("/v1/endpoints/{ep_id}")).await;
    let stats = got.expect(200)["stats"].clone();
    assert_eq!(stats["delivered"], 1, "{stats}");
    assert_eq!(stats["failed"], 0, "{stats}");
    assert_eq!(stats["retrying"], 0, "{stats}");
    assert_rfc3339_ms(&stats["last_delivery_at"]);
    assert_eq!(stats["failing_since"], Value::Null, "{stats}");

    // Endpoint deliveries and the status filter.
    let path = format!("/v1/endpoints/{ep_id}/deliveries");
    let all = api.get(&path).await.expect(200).clone();
    let data = all["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{all}");
    assert_eq!(data[0]["id"], dlv_id.as_str());
    assert_eq!(data[0]["status"], "delivered");
    assert_eq!(
        data[0]["attempts"], 1,
        "in a list, attempts is the count: {all}"
    );
    assert_eq!(all["next_cursor"], Value::Null);
    let ok = api
        .get(&format!("{path}?status=delivered"))
        .await
        .expect(200)
        .clone();
    assert_eq!(ok["data"].as_array().unwrap().len(), 1, "{ok}");
    for s in ["dead_lettered", "failed", "retrying", "pending"] {
        let v = api
            .get(&format!("{path}?status={s}"))
            .await
            .expect(200)
            .clone();
        assert_eq!(v["data"].as_array().unwrap().len(), 0, "status={s}: {v}");
    }

    // Whitespace and escapes inside `data` are kept byte for byte too.
    let spaced = r#"{ "b" : [1,  2],
  "s": "caf\u00e9 \n\"q\"", "a":{} }"#;
    let raw = format!(r#"{{"type": "instance.ready", "id": "spaced", "data": {spaced} }}"#);
    api.post_raw("/v1/events", &raw, &[]).await.expect(202);
    let reqs = rx.wait_for_path("/ok", 2, PATIENCE).await;
    let req = &reqs[1];
    assert_eq!(req.webhook_id(), "spaced");
    assert!(
        req.body_str().ends_with(&format!(r#","data":{spaced}}}"#)),
        "data must be delivered byte for byte: {}",
        req.body_str()
    );
    verify_with_python(&[(&secret, req)]);

    // Nothing else arrives: both events are fanned out, each made one delivery, both are
    // delivered and no request is in flight, so no attempt is left to make.
    let m = wait_fanned_out(api, 2).await;
    assert_eq!(m.get("hookd_deliveries_created_total"), 2, "{m:?}");
    wait_endpoint_settled(api, &ep_id).await;
    assert_eq!(rx.count(), 2, "{}", describe(&rx.requests()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attempt_errors_are_classified() {
    let (_dir, rx, d) = setup(|c| c.set("retry", "schedule", "[\"30s\"]")).await;
    let api = &d.api;
    rx.script(
        "/slow",
        // Far past the 2 s [sender] timeout: only the timeout can end the attempt.
        Reply::Slow {
            delay: secs(60),
            status: 200,
        },
    );
    rx.script("/teapot", Reply::Status(418));
    // A port where nothing listens.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let cases = [
        ("slow", rx.url("/slow"), "timeout", Value::Null),
        ("teapot", rx.url("/teapot"), "http_status", json!(418)),
        (
            "closed",
            format!("http://{closed}/x"),
            "connect",
            Value::Null,
        ),
    ];
    let mut dlvs = Vec::new();
    for (name, url, _, _) in &cases {
        let ty = format!(
            "deployment.{}",
            ["created", "running", "failed"][dlvs.len()]
        );
        api.create_endpoint(json!({"name": name, "url": url, "event_types": [ty]}))
            .await;
        let ev = api
            .post_event(json!({"type": ty, "id": format!("err-{name}"), "data": {}}))
            .await;
        dlvs.push(ev["id"].as_str().unwrap().to_string());
    }
    for ((name, _, error, code), ev_id) in cases.iter().zip(&dlvs) {
        let ds = api.wait_event_deliveries(ev_id, 1, PATIENCE).await;
        let dlv = ds[0]["id"].as_str().unwrap().to_string();
        let dv = wait_for(
            || async {
                let dv = api.delivery(&dlv).await;
                match dv["attempts"].as_array() {
                    Some(a) if !a.is_empty() => Ok(dv),
                    _ => Err(dv.to_string()),
                }
            },
            &format!("{name}: a recorded attempt"),
            PATIENCE,
        )
        .await;
        assert_eq!(dv["status"], "retrying", "{name}: {dv}");
        assert_rfc3339_ms(&dv["next_attempt_at"]);
        let a = &dv["attempts"][0];
        assert_eq!(a["error"], *error, "{name}: {dv}");
        assert_eq!(a["status_code"], *code, "{name}: {dv}");
        if *name == "slow" {
            // Not before the 2 s timeout (the receiver would have answered after 60 s).
            let ms = a["latency_ms"].as_u64().unwrap_or(0);
            assert!(
                ms >= 1900,
                "timeout after {ms} ms, [sender] timeout is 2s: {dv}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_and_tenants_route_events() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;

    let mk = |tenant: &str, path: &str, types: Value, enabled: bool| {
        json!({
            "name": path,
            "tenant": tenant,
            "url": rx.url(path),
            "event_types": types,
            "enabled": enabled,
        })
    };
    let (a_job, a_job_secret, _) = api
        .create_endpoint(mk("a", "/a-job", json!(["job.*"]), true))
        .await;
    let (a_ready, _, _) = api
        .create_endpoint(mk("a", "/a-ready", json!(["instance.ready"]), true))
        .await;
    let (_b_all, b_all_secret, _) = api
        .create_endpoint(mk("b", "/b-all", json!(["*"]), true))
        .await;
    let (disabled, _, dis) = api
        .create_endpoint(mk("a", "/disabled", json!(["*"]), false))
        .await;
    assert_eq!(dis["enabled"], false);
    let (_def, _, def) = api
        .create_endpoint(json!({
            "name": "default all",
            "url": rx.url("/default-all"),
            "event_types": ["*"],
        }))
        .await;
    assert_eq!(def["tenant"], "default");

    // Listing per tenant, newest first, with pagination.
    let a_list = api.get("/v1/endpoints?tenant=a").await.expect(200).clone();
    let ids: Vec<&str> = a_list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{a_list}");
    assert_eq!(
        ids,
        vec![disabled.as_str(), a_ready.as_str(), a_job.as_str()],
        "lists are newest first: {a_list}"
    );
    let page1 = api
        .get("/v1/endpoints?tenant=a&limit=2")
        .await
        .expect(200)
        .clone();
    assert_eq!(page1["data"].as_array().unwrap().len(), 2, "{page1}");
    let cursor = page1["next_cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a next_cursor: {page1}"))
        .to_string();
    let page2 = api
        .get(&format!("/v1/endpoints?tenant=a&limit=2&cursor={cursor}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(page2["data"].as_array().unwrap().len(), 1, "{page2}");
    assert_eq!(page2["next_cursor"], Value::Null, "{page2}");
    let mut paged: Vec<&str> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["data"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(paged, ids, "pages must concatenate to the full list");
    paged.sort();
    paged.dedup();
    assert_eq!(paged.len(), 3);

    // Events: (tenant, type, id).
    let events = [
        ("a", "job.created", "e-a-job-created"),
        ("a", "job.completed", "e-a-job-completed"),
        ("a", "instance.ready", "e-a-ready"),
        ("a", "instance.failed", "e-a-failed"),
        ("b", "job.created", "e-b-job-created"),
        ("b", "instance.ready", "e-b-ready"),
        ("default", "job.started", "e-def-job-started"),
        ("c", "job.created", "e-c-job-created"),
    ];
    for (tenant, ty, id) in events {
        let mut body = json!({"type": ty, "id": id, "data": {"n": id}});
        if tenant != "default" {
            body["tenant"] = json!(tenant);
        }
        let ev = api.post_event(body).await;
        assert_eq!(ev["id"], id);
        assert_eq!(ev["tenant"], tenant);
    }

    let mut expected: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    expected.insert("/a-job", ["e-a-job-created", "e-a-job-completed"].into());
    expected.insert("/a-ready", ["e-a-ready"].into());
    expected.insert("/b-all", ["e-b-job-created", "e-b-ready"].into());
    expected.insert("/default-all", ["e-def-job-started"].into());
    let total: usize = expected.values().map(BTreeSet::len).sum();
    // Every event is fanned out and made exactly the expected deliveries; all of them were
    // attempted and none is in flight: nothing else can arrive.
    let m = wait_fanned_out(api, events.len() as u64).await;
    assert_eq!(
        m.get("hookd_deliveries_created_total"),
        total as u64,
        "{m:?}"
    );
    rx.wait_for(total, PATIENCE).await;
    wait_attempts(api, total as u64).await;

    let reqs = rx.requests();
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &reqs {
        got.entry(r.path.clone())
            .or_default()
            .push(r.webhook_id().to_string());
    }
    for (path, ids) in &expected {
        let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        want.sort();
        let mut have = got.get(*path).cloned().unwrap_or_default();
        have.sort();
        assert_eq!(
            have,
            want,
            "events delivered to {path}:\n{}",
            describe(&reqs)
        );
    }
    assert!(
        !got.contains_key("/disabled"),
        "disabled endpoint got requests:\n{}",
        describe(&reqs)
    );
    assert_eq!(
        reqs.len(),
        total,
        "unexpected requests:\n{}",
        describe(&reqs)
    );
    for r in &reqs {
        match r.path.as_str() {
            "/a-job" => assert_signed(r, &a_job_secret),
            "/b-all" => assert_signed(r, &b_all_secret),
            _ => {}
        }
        let body = r.json();
        assert_eq!(body["id"], r.webhook_id());
        assert_eq!(body["data"], json!({"n": r.webhook_id()}));
    }

    // Disabling by PATCH stops deliveries; re-enabling and narrowing the filter by PATCH works.
    let p = api
        .patch(
            &format!("/v1/endpoints/{a_ready}"),
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(p.expect(200)["enabled"], false);
    api.post_event(
        json!({"type": "instance.ready", "tenant": "a", "id": "e-a-ready-2", "data": {}}),
    )
    .await;
    let p = api
        .patch(
            &format!("/v1/endpoints/{a_job}"),
            &json!({"event_types": ["job.failed"]}),
        )
        .await;
    assert_eq!(p.expect(200)["event_types"], json!(["job.failed"]));
    api.post_event(
        json!({"type": "job.created", "tenant": "a", "id": "e-a-job-created-2", "data": {}}),
    )
    .await;
    api.post_event(
        json!({"type": "job.failed", "tenant": "a", "id": "e-a-job-failed", "data": {}}),
    )
    .await;
    // Three more events, one more delivery.
    let m = wait_fanned_out(api, events.len() as u64 + 3).await;
    assert_eq!(
        m.get("hookd_deliveries_created_total"),
        total as u64 + 1,
        "after PATCH only e-a-job-failed makes a delivery: {m:?}"
    );
    rx.wait_until("e-a-job-failed at /a-job", PATIENCE, |r| {
        r.iter()
            .any(|x| x.path == "/a-job" && x.webhook_id() == "e-a-job-failed")
    })
    .await;
    wait_attempts(api, total as u64 + 1).await;
    let reqs_after = rx.requests();
    assert_eq!(
        reqs_after.len(),
        total + 1,
        "after PATCH only e-a-job-failed may arrive:\n{}",
        describe(&reqs_after)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_then_success() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    rx.script(
        "/fail-then-ok",
        Reply::FailThenOk {
            fails: 2,
            fail_status: 500,
            ok_status: 200,
        },
    );
    let (ep_id, secret, _) = api
        .create_endpoint(json!({
            "name": "flaky",
            "url": rx.url("/fail-then-ok"),
            "event_types": ["job.*"],
        }))
        .await;
    let ev = api
        .post_event(json!({"type": "job.started", "data": {"job": 7}}))
        .await;
    let ev_id = ev["id"].as_str().unwrap().to_string();

    let reqs = rx.wait_for_path("/fail-then-ok", 3, PATIENCE).await;
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![500, 500, 200]
    );
    for r in &reqs {
        assert_eq!(r.webhook_id(), ev_id, "every attempt carries the event id");
        assert_signed(r, &secret);
    }
    // Same body on every attempt.
    assert_eq!(reqs[0].body, reqs[1].body);
    assert_eq!(reqs[1].body, reqs[2].body);
    // No retry comes before the schedule (200ms, 400ms, jitter 0) says, as the receiver saw it
    // (with slack downward: the first request also opened the connection) ...
    let gap1 = reqs[1].at - reqs[0].at;
    let gap2 = reqs[2].at - reqs[1].at;
    assert!(
        gap1 >= millis(150),
        "first retry after {gap1:?}, schedule says 200ms"
    );
    assert!(
        gap2 >= millis(350),
        "second retry after {gap2:?}, schedule says 400ms"
    );
    let items: Vec<(&str, &Recorded)> = reqs.iter().map(|r| (secret.as_str(), r)).collect();
    verify_with_python(&items);

    let ds = api.wait_event_deliveries(&ev_id, 1, PATIENCE).await;
    let dlv_id = ds[0]["id"].as_str().unwrap().to_string();
    let dv = api
        .wait_delivery_status(&dlv_id, "delivered", PATIENCE)
        .await;
    let attempts = dv["attempts"].as_array().expect("attempts list").clone();
    assert_eq!(attempts.len(), 3, "{dv}");
    let codes: Vec<Value> = attempts.iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(codes, vec![json!(500), json!(500), json!(200)], "{dv}");
    let numbers: Vec<Value> = attempts.iter().map(|a| a["number"].clone()).collect();
    assert_eq!(numbers, vec![json!(1), json!(2), json!(3)], "{dv}");
    assert_eq!(attempts[0]["error"], "http_status", "{dv}");
    assert_eq!(attempts[1]["error"], "http_status", "{dv}");
    assert_eq!(attempts[2]["error"], Value::Null, "{dv}");
    assert_eq!(attempts[0]["response_body"], "fail 1", "{dv}");
    assert_eq!(attempts[1]["response_body"], "fail 2", "{dv}");
    assert_eq!(attempts[2]["response_body"], "ok", "{dv}");
    assert_eq!(dv["last_status_code"], 200, "{dv}");
    // ... and as the daemon recorded it: each attempt starts at least its delay after the
    // previous one started.
    let at: Vec<u64> = attempts.iter().map(|a| unix_ms(&a["at"])).collect();
    assert!(
        at[1] >= at[0] + 200,
        "attempts at {at:?}, schedule says +200ms: {dv}"
    );
    assert!(
        at[2] >= at[1] + 400,
        "attempts at {at:?}, schedule says +400ms: {dv}"
    );

    let stats = api.get(&format!("/v1/endpoints/{ep_id}")).await.expect(200)["stats"].clone();
    assert_eq!(stats["delivered"], 1, "{stats}");
    assert_eq!(stats["failed"], 0, "{stats}");
    assert_eq!(stats["retrying"], 0, "{stats}");

    // No attempt after success: the only delivery is delivered, three attempts were made and
    // none is in flight.
    wait_endpoint_settled(api, &ep_id).await;
    wait_attempts(api, 3).await;
    assert_eq!(
        rx.count(),
        3,
        "no attempt after success:\n{}",
        describe(&rx.requests())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letter_then_manual_retry() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    rx.script("/always-500", Reply::Status(500));
    let (ep_id, secret, _) = api
        .create_endpoint(json!({
            "name": "broken",
            "url": rx.url("/always-500"),
            "event_types": ["*"],
        }))
        .await;
    let ev = api
        .post_event(json!({"type": "node.unhealthy", "data": {"node": "n1"}}))
        .await;
    let ev_id = ev["id"].as_str().unwrap().to_string();

    rx.wait_for_path("/always-500", 3, PATIENCE).await;
    let ds = api.wait_event_deliveries(&ev_id, 1, PATIENCE).await;
    let dlv_id = ds[0]["id"].as_str().unwrap().to_string();
    let dv = api
        .wait_delivery_status(&dlv_id, "dead_lettered", PATIENCE)
        .await;
    let attempts = dv["attempts"].as_array().expect("attempts list");
    assert_eq!(
        attempts.len(),
        3,
        "1 try + 2 retries, then dead letter: {dv}"
    );
    assert!(attempts.iter().all(|a| a["status_code"] == 500), "{dv}");
    assert_eq!(dv["next_attempt_at"], Value::Null, "{dv}");

    let stats = api.get(&format!("/v1/endpoints/{ep_id}")).await.expect(200)["stats"].clone();
    assert_eq!(stats["failed"], 1, "{stats}");
    assert_eq!(stats["delivered"], 0, "{stats}");
    assert_eq!(stats["retrying"], 0, "{stats}");
    assert_eq!(stats["last_delivery_at"], Value::Null, "{stats}");
    assert_eq!(stats["failing_since"], attempts[0]["at"], "{stats}");
    let path = format!("/v1/endpoints/{ep_id}/deliveries");
    for (filter, n) in [("dead_lettered", 1), ("failed", 1), ("delivered", 0)] {
        let v = api
            .get(&format!("{path}?status={filter}"))
            .await
            .expect(200)
            .clone();
        assert_eq!(
            v["data"].as_array().unwrap().len(),
            n,
            "status={filter}: {v}"
        );
    }

    // No further attempt on its own: dead-lettered, no deadline, nothing in flight.
    wait_endpoint_settled(api, &ep_id).await;
    wait_attempts(api, 3).await;
    assert_eq!(rx.requests_to("/always-500").len(), 3);

    // Receiver recovers; a manual retry delivers. The 202 shows it scheduled now.
    rx.script("/always-500", Reply::Status(200));
    let r = api
        .post(&format!("/v1/deliveries/{dlv_id}/retry"), &json!({}))
        .await;
    let body = r.expect(202).clone();
    assert_eq!(body["id"], dlv_id.as_str(), "{body}");
    assert_rfc3339_ms(&body["next_attempt_at"]);
    assert_eq!(body["next_attempt_at"], body["updated_at"], "{body}");
    let reqs = rx.wait_for_path("/always-500", 4, PATIENCE).await;
    assert_eq!(reqs[3].webhook_id(), ev_id);
    assert_eq!(reqs[3].status, 200);
    assert_signed(&reqs[3], &secret);
    verify_with_python(&[(&secret, &reqs[3])]);
    let dv = api
        .wait_delivery_status(&dlv_id, "delivered", PATIENCE)
        .await;
    let attempts = dv["attempts"].as_array().expect("attempts list");
    assert_eq!(attempts.len(), 4, "{dv}");
    assert_eq!(attempts[3]["status_code"], 200, "{dv}");
    assert_eq!(attempts[3]["number"], 4, "{dv}");

    // Retrying a delivered delivery conflicts and changes nothing.
    let r = api
        .post(&format!("/v1/deliveries/{dlv_id}/retry"), &json!({}))
        .await;
    r.expect_error(409, "CONFLICT");
    let r = api
        .post("/v1/deliveries/dlv_does_not_exist/retry", &json!({}))
        .await;
    r.expect_error(404, "NOT_FOUND");
    // Had the 409 scheduled anything, it would come before a later event to the same endpoint.
    deliver_sentinel(
        api,
        &rx,
        "/always-500",
        json!({"type": "node.unhealthy", "id": "sentinel", "data": {}}),
    )
    .await;
    wait_attempts(api, 5).await;
    let to_ev: Vec<Recorded> = rx
        .requests_to("/always-500")
        .into_iter()
        .filter(|r| r.webhook_id() == ev_id)
        .collect();
    assert_eq!(to_ev.len(), 4, "{}", describe(&rx.requests()));
    let dv = api.delivery(&dlv_id).await;
    assert_eq!(dv["status"], "delivered");
    assert_eq!(dv["attempts"].as_array().unwrap().len(), 4);
}

/// `POST /v1/endpoints/{ep}/test` of a `gpu.available` event; returns the 200 answer.
async fn test_send(api: &Api, ep: &str) -> Value {
    let r = api
        .post(
            &format!("/v1/endpoints/{ep}/test"),
            &json!({"event_type": "gpu.available"}),
        )
        .await;
    r.expect(200).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secret_rotation_and_test_send() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;

    // A given secret is kept.
    let given = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 24])
    );
    let (ep_id, secret, _) = api
        .create_endpoint(json!({
            "name": "given secret",
            "url": rx.url("/ok"),
            "event_types": ["gpu.available"],
            "secret": given,
        }))
        .await;
    assert_eq!(secret, given);
    api.post_event(json!({"type": "gpu.available", "id": "before-rotation", "data": {}}))
        .await;
    let reqs = rx.wait_for_path("/ok", 1, PATIENCE).await;
    assert_signed(&reqs[0], &given);

    // Rotation without an overlap returns a new secret; later deliveries are signed with it
    // alone (the overlap window is tested with the wire formats).
    let r = api
        .post(
            &format!("/v1/endpoints/{ep_id}/rotate-secret"),
            &json!({"overlap_seconds": 0}),
        )
        .await;
    let rotated = r.expect(200)["secret"]
        .as_str()
        .expect("rotated secret")
        .to_string();
    assert!(
        rotated.starts_with("whsec_") && rotated != given,
        "{rotated}"
    );
    assert_eq!(secret_key(&rotated).len(), 32);
    api.post_event(
        json!({"type": "gpu.available", "id": "after-rotation", "data": {"amount": 100}}),
    )
    .await;
    let reqs = rx.wait_for_path("/ok", 2, PATIENCE).await;
    let after = reqs
        .iter()
        .find(|r| r.webhook_id() == "after-rotation")
        .expect("after-rotation delivered");
    verify_with_python(&[(&rotated, after)]);

    // The independent verifier rejects what it must: it is not a check that always passes.
    let good = Signed::of(&rotated, after);
    let tampered = good.body.replacen(r#""amount":100"#, r#""amount":900"#, 1);
    assert_eq!(tampered.len(), good.body.len());
    let differing = tampered
        .bytes()
        .zip(good.body.bytes())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differing, 1, "{tampered}");
    let wrong_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([1u8; 32])
    );
    let stale = (unix_now() - 600).to_string();
    let no_match = "No matching signature found";
    verify_with_python_expect_fail(
        &good,
        &[
            (
                "body changed by one byte",
                good.clone().with_body(tampered),
                no_match,
            ),
            (
                "wrong secret",
                good.clone().with_secret(&wrong_secret),
                no_match,
            ),
            (
                "the secret from before the rotation",
                good.clone().with_secret(&given),
                no_match,
            ),
            (
                "another webhook-id",
                good.clone().with_header("webhook-id", "before-rotation"),
                no_match,
            ),
            (
                "a timestamp 10 minutes old",
                good.clone().with_header("webhook-timestamp", &stale),
                "timestamp too old",
            ),
        ],
    )
    .await;

    // Rotation to a given secret.
    let given2 = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 64])
    );
    let r = api
        .post(
            &format!("/v1/endpoints/{ep_id}/rotate-secret"),
            &json!({"secret": given2}),
        )
        .await;
    assert_eq!(r.expect(200)["secret"], given2.as_str());

    // Test send: signed, sent now, not recorded.
    let t = test_send(api, &ep_id).await;
    assert_eq!(t["delivered"], true, "{t}");
    assert_eq!(t["status_code"], 204, "{t}");
    assert!(t["latency_ms"].is_number(), "{t}");
    assert_eq!(t["error"], Value::Null, "{t}");
    let test_id = t["event_id"].as_str().expect("event_id").to_string();
    let reqs = rx.wait_for_path("/ok", 3, PATIENCE).await;
    let test_req = reqs
        .iter()
        .find(|r| r.webhook_id() == test_id)
        .expect("test request arrived");
    verify_with_python(&[(&given2, test_req)]);
    let dl = api
        .get(&format!("/v1/endpoints/{ep_id}/deliveries"))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        dl["data"].as_array().unwrap().len(),
        2,
        "the test send must not be recorded: {dl}"
    );

    // A test send the receiver fails says so.
    rx.script("/down", Reply::Status(500));
    api.patch(
        &format!("/v1/endpoints/{ep_id}"),
        &json!({"url": rx.url("/down")}),
    )
    .await
    .expect(200);
    let t = test_send(api, &ep_id).await;
    assert_eq!(t["delivered"], false, "{t}");
    assert_eq!(t["status_code"], 500, "{t}");
    assert_eq!(t["error"], "http_status", "{t}");
    let down = rx.requests_to("/down");
    assert_eq!(down.len(), 1, "{}", describe(&rx.requests()));
    assert_eq!(down[0].webhook_id(), t["event_id"].as_str().unwrap());
    verify_with_python(&[(&given2, &down[0])]);

    // A bad given secret is rejected and the endpoint keeps its secret.
    for bad in ["nope", "whsec_", "whsec_!!!", "whsec_AAAA"] {
        let r = api
            .post(
                &format!("/v1/endpoints/{ep_id}/rotate-secret"),
                &json!({"secret": bad}),
            )
            .await;
        r.expect_error(400, "VALIDATION_ERROR");
    }

    // Delete: 204, then 404, and no more deliveries.
    let history: Vec<Value> = dl["data"].as_array().unwrap().clone();
    api.delete(&format!("/v1/endpoints/{ep_id}"))
        .await
        .expect(204);
    api.get(&format!("/v1/endpoints/{ep_id}"))
        .await
        .expect_error(404, "NOT_FOUND");
    api.post_event(json!({"type": "gpu.available", "id": "after-delete", "data": {}}))
        .await;
    let m = wait_fanned_out(api, 3).await;
    assert_eq!(m.get("hookd_deliveries_created_total"), 2, "{m:?}");
    let got = api.event("after-delete").await;
    assert_eq!(got["deliveries"], json!([]), "{got}");
    wait_attempts(api, 2).await;
    assert!(
        !rx.requests()
            .iter()
            .any(|r| r.webhook_id() == "after-delete"),
        "deleted endpoint got a delivery:\n{}",
        describe(&rx.requests())
    );

    // Its delivery history goes with it (in the background): by delivery id and from the event.
    for d in &history {
        let id = d["id"].as_str().unwrap();
        wait_for(
            || async {
                match api.get(&format!("/v1/deliveries/{id}")).await {
                    r if r.status == 404 => Ok(()),
                    r => Err(format!("{r:?}")),
                }
            },
            "the deleted endpoint's delivery to be deleted",
            PATIENCE,
        )
        .await;
        let ev = api.event(d["event_id"].as_str().unwrap()).await;
        assert_eq!(ev["deliveries"], json!([]), "{ev}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_listing_pagination_and_time_filters() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let (ep_id, _, _) = api
        .create_endpoint(json!({"name": "all", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;
    for i in 0..5 {
        api.post_event(json!({"type": "job.created", "id": format!("page-{i}"), "data": {}}))
            .await;
        wait_fanned_out(api, i + 1).await;
        // Not a barrier: the next delivery is created after this one's fan-out, and this puts
        // a clock millisecond between their creation times so a time window can tell them apart.
        tokio::time::sleep(millis(2)).await;
    }
    rx.wait_for(5, PATIENCE).await;
    let path = format!("/v1/endpoints/{ep_id}/deliveries");
    let settled = wait_endpoint_settled(api, &ep_id).await;
    assert!(
        settled.iter().all(|d| d["status"] == "delivered"),
        "{settled:?}"
    );

    // Pages of 2: 2 + 2 + 1, newest first, no duplicates, same as the full list.
    let full = api.get(&path).await.expect(200).clone();
    let full_ids: Vec<String> = full["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(full_ids.len(), 5, "{full}");
    let created: Vec<&str> = full["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["created_at"].as_str().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "lists are newest first: {created:?}"
    );
    let events: Vec<&str> = full["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec!["page-4", "page-3", "page-2", "page-1", "page-0"]
    );

    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("{path}?limit=2&cursor={c}"),
            None => format!("{path}?limit=2"),
        };
        let v = api.get(&q).await.expect(200).clone();
        let data = v["data"].as_array().unwrap();
        sizes.push(data.len());
        paged.extend(data.iter().map(|x| x["id"].as_str().unwrap().to_string()));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                assert_eq!(v["next_cursor"], Value::Null, "{v}");
                cursor = None;
                break;
            }
        }
    }
    assert!(cursor.is_none(), "pagination did not end");
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(paged, full_ids);

    // Time filters: RFC 3339 and unix milliseconds.
    let none = api
        .get(&format!("{path}?from=2999-01-01T00:00:00.000Z"))
        .await
        .expect(200)
        .clone();
    assert_eq!(none["data"].as_array().unwrap().len(), 0, "{none}");
    let none = api
        .get(&format!("{path}?to=1000"))
        .await
        .expect(200)
        .clone();
    assert_eq!(none["data"].as_array().unwrap().len(), 0, "{none}");
    let all = api
        .get(&format!("{path}?from=1000&to=32503680000000"))
        .await
        .expect(200)
        .clone();
    assert_eq!(all["data"].as_array().unwrap().len(), 5, "{all}");

    // A window that selects some but not all: both ends are inclusive, in either notation.
    let at = |event: &str| {
        let d = full["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["event_id"] == event)
            .unwrap();
        (
            d["created_at"].as_str().unwrap().to_string(),
            unix_ms(&d["created_at"]),
        )
    };
    let ((from_s, from_ms), (to_s, to_ms)) = (at("page-1"), at("page-3"));
    let path = &path;
    let window = |q: String| async move {
        let v = api.get(&format!("{path}?{q}")).await.expect(200).clone();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["event_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let middle = vec!["page-3", "page-2", "page-1"];
    assert_eq!(window(format!("from={from_s}&to={to_s}")).await, middle);
    assert_eq!(window(format!("from={from_ms}&to={to_ms}")).await, middle);
    assert_eq!(
        window(format!("from={}&to={}", from_ms + 1, to_ms - 1)).await,
        vec!["page-2"]
    );
    assert_eq!(
        window(format!("from={from_ms}&limit=2")).await,
        vec!["page-4", "page-3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_an_endpoint_dead_letters_its_scheduled_deliveries() {
    // A retry delay long enough for the endpoint to be disabled while the delivery waits.
    let (_dir, rx, d) = setup(|c| c.set("retry", "schedule", "[\"3s\", \"1h\"]")).await;
    let api = &d.api;
    rx.script("/flaky", Reply::Status(503));
    let (ep_id, _, _) = api
        .create_endpoint(json!({"name": "flaky", "url": rx.url("/flaky"), "event_types": ["*"]}))
        .await;
    let ev = api
        .post_event(json!({"type": "job.failed", "data": {"job": 7}}))
        .await;
    let ev_id = ev["id"].as_str().unwrap().to_string();
    let ds = api.wait_event_deliveries(&ev_id, 1, PATIENCE).await;
    let dlv_id = ds[0]["id"].as_str().unwrap().to_string();
    api.wait_delivery_status(&dlv_id, "retrying", PATIENCE)
        .await;

    let r = api
        .patch(
            &format!("/v1/endpoints/{ep_id}"),
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(r.expect(200)["enabled"], false);
    let dv = api
        .wait_delivery_status(&dlv_id, "dead_lettered", PATIENCE)
        .await;
    let attempts = dv["attempts"].as_array().expect("attempts list").clone();
    assert_eq!(attempts.len(), 2, "{dv}");
    assert_eq!(attempts[1]["error"], "endpoint_disabled", "{dv}");
    assert_eq!(attempts[1]["status_code"], Value::Null, "{dv}");
    assert_eq!(
        rx.requests_to("/flaky").len(),
        1,
        "nothing is sent while disabled"
    );

    // New events skip the disabled endpoint entirely.
    let ev2 = api
        .post_event(json!({"type": "job.failed", "data": {"job": 8}}))
        .await;
    let m = wait_fanned_out(api, 2).await;
    assert_eq!(m.get("hookd_deliveries_created_total"), 1, "{m:?}");
    let got = api.event(ev2["id"].as_str().unwrap()).await;
    assert_eq!(got["deliveries"], json!([]), "{got}");

    // Re-enabled and recovered: a manual retry delivers.
    rx.script("/flaky", Reply::Status(200));
    api.patch(&format!("/v1/endpoints/{ep_id}"), &json!({"enabled": true}))
        .await
        .expect(200);
    api.post(&format!("/v1/deliveries/{dlv_id}/retry"), &json!({}))
        .await
        .expect(202);
    let dv = api
        .wait_delivery_status(&dlv_id, "delivered", PATIENCE)
        .await;
    assert_eq!(dv["attempts"].as_array().unwrap().len(), 3, "{dv}");
    assert_eq!(rx.requests_to("/flaky").len(), 2);
}
