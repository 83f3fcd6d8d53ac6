//! Per-endpoint delivery controls, end to end: a rate limit held within 10% (counted by the
//! receiver's arrival times), FIFO order under retries, and bad controls refused with nothing
//! changed.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `n` events of type `job.completed` in one batch, `data.n` numbering them from 0.
async fn batch(api: &Api, n: usize) {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"type": "job.completed", "data": {"n": i}}))
        .collect();
    api.post("/v1/events/batch", &Value::Array(items))
        .await
        .expect(202);
}

/// Waits until the endpoint's first failed delivery reads as dead-lettered (the read model
/// follows the outcome log); returns its id.
async fn dead_lettered(api: &Api, endpoint: &str) -> String {
    let failed = format!("/v1/endpoints/{endpoint}/deliveries?status=failed");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let page = api.get(&failed).await.expect(200).clone();
        if page["data"][0]["status"] == "dead_lettered" {
            return page["data"][0]["id"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not dead-lettered: {page}"
        );
        tokio::time::sleep(millis(20)).await;
    }
}

/// Scripts `path` to answer `fail_status` to its first `fails` requests, then 204.
fn fail_then_ok(rx: &Receiver, path: &str, fails: usize, fail_status: u16) {
    rx.script(
        path,
        Reply::FailThenOk {
            fails,
            fail_status,
            ok_status: 204,
        },
    );
}

/// A FIFO endpoint named `name`, subscribed to `job.*`, at the receiver's `path`: its id,
/// secret and view, as `create_endpoint` gives them.
async fn fifo_endpoint(
    api: &Api,
    rx: &Receiver,
    name: &str,
    path: &str,
) -> (String, String, Value) {
    api.create_endpoint(json!({
        "name": name, "url": rx.url(path), "event_types": ["job.*"], "fifo": true,
    }))
    .await
}

/// The `data.n` a delivery carried.
fn number(r: &Recorded) -> u64 {
    let v = r.json();
    v["data"]["n"]
        .as_u64()
        .unwrap_or_else(|| panic!("no data.n in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_holds_within_ten_percent() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let (id, _, created) = api
        .create_endpoint(json!({
            "name": "paced", "url": rx.url("/paced"), "event_types": ["job.*"],
            "rate_limit": {"per_second": 20, "burst": 1},
        }))
        .await;
    assert_eq!(created["rate_limit"], json!({"per_second": 20, "burst": 1}));
    assert_eq!(created["fifo"], false);
    let got = api.get(&format!("/v1/endpoints/{id}")).await;
    assert_eq!(got.expect(200)["rate_limit"]["per_second"], 20);

    // Sixty deliveries due at once: without the limit they arrive within a few milliseconds.
    let n = 60;
    batch(api, n).await;
    // The scheduler shows the deliveries waiting for their tokens.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let ep = api
            .get(&format!("/v1/endpoints/{id}"))
            .await
            .expect(200)
            .clone();
        if ep["health"]["queued"].as_u64().unwrap() > 10 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ep}");
        tokio::time::sleep(millis(10)).await;
    }
    let reqs = rx.wait_for_path("/paced", n, secs(30)).await;
    let at: Vec<Duration> = reqs.iter().map(|r| r.at - reqs[0].at).collect();
    let span = at[n - 1].as_secs_f64();
    let rate = (n - 1) as f64 / span;
    assert!(
        (18.0..=22.0).contains(&rate),
        "{rate:.2}/s over {span:.3} s; limit 20/s"
    );
    // In any one-second window: at most the burst plus 20, and 10% more for arrival jitter.
    for (i, start) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .take_while(|t| **t - *start < secs(1))
            .count();
        assert!(
            within <= 22,
            "{within} arrivals in the second from {start:?}"
        );
    }
    // Every delivery went once: waiting for a token spends no attempt.
    assert!(reqs.iter().all(|r| r.is_success()));
    assert_eq!(rx.requests_to("/paced").len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifo_delivers_in_ingest_order_and_a_failing_head_holds_the_rest() {
    let (_dir, rx, d) = setup(|c| {
        c.set(
            "retry",
            "schedule",
            r#"["150ms","150ms","150ms","150ms","150ms"]"#,
        )
    })
    .await;
    let api = &d.api;
    // The first three requests to the endpoint fail: those are its head's first attempts.
    let fails = 3;
    fail_then_ok(&rx, "/fifo", fails, 500);
    let (_, _, created) = fifo_endpoint(api, &rx, "ordered", "/fifo").await;
    assert_eq!(created["fifo"], true);
    let n = 8;
    batch(api, n).await;
    let reqs = rx.wait_for_path("/fifo", n + fails, secs(60)).await;
    let order: Vec<u64> = reqs.iter().map(number).collect();
    // Nothing after the head arrived while it was failing: its retries, then its success.
    assert_eq!(&order[..=fails], &[0; 4], "arrivals: {order:?}");
    for r in &reqs[..fails] {
        assert!(!r.is_success());
    }
    // The successful deliveries came in ingest order, each once.
    let delivered: Vec<u64> = reqs.iter().filter(|r| r.is_success()).map(number).collect();
    assert_eq!(delivered, (0..n as u64).collect::<Vec<_>>());
    // One in flight at a time: each request arrived after the one before was answered.
    tokio::time::sleep(millis(300)).await;
    assert_eq!(rx.requests_to("/fifo").len(), n + fails, "no extra attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifo_with_a_rate_limit_keeps_both_and_patch_changes_and_lifts_them() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let (id, _, _) = api
        .create_endpoint(json!({
            "name": "both", "url": rx.url("/both"), "event_types": ["job.*"],
            "fifo": true, "rate_limit": {"per_second": 10},
        }))
        .await;
    let path = format!("/v1/endpoints/{id}");
    let ep = api.get(&path).await.expect(200).clone();
    assert_eq!(ep["rate_limit"], json!({"per_second": 10, "burst": 1}));
    assert_eq!(ep["fifo"], true);
    let n = 10;
    batch(api, n).await;
    let reqs = rx.wait_for_path("/both", n, secs(30)).await;
    let order: Vec<u64> = reqs.iter().map(number).collect();
    assert_eq!(order, (0..n as u64).collect::<Vec<_>>());
    let span = (reqs[n - 1].at - reqs[0].at).as_secs_f64();
    assert!(span >= 0.9 * (n - 1) as f64 / 10.0, "{n} in {span:.3} s");

    // PATCH: other fields leave the controls alone; `null` lifts the limit; FIFO turns off.
    let v = api.patch(&path, &json!({"name": "renamed"})).await;
    assert_eq!(v.expect(200)["rate_limit"]["per_second"], 10);
    let v = api
        .patch(&path, &json!({"rate_limit": null, "fifo": false}))
        .await;
    let v = v.expect(200).clone();
    assert_eq!(
        (v["rate_limit"].clone(), v["fifo"].clone()),
        (Value::Null, json!(false))
    );
    let v = api
        .patch(&path, &json!({"rate_limit": {"per_second": 5, "burst": 5}}))
        .await;
    assert_eq!(
        v.expect(200)["rate_limit"],
        json!({"per_second": 5, "burst": 5})
    );
    assert_eq!(api.get(&path).await.expect(200)["rate_limit"]["burst"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_controls_are_refused_naming_the_field_and_change_nothing() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let base = json!({"name": "x", "url": rx.url("/x"), "event_types": ["job.*"]});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let bad = [
        (
            json!({"rate_limit": {"per_second": 0}}),
            "rate_limit.per_second",
        ),
        (
            json!({"rate_limit": {"per_second": -5}}),
            "rate_limit.per_second",
        ),
        (
            json!({"rate_limit": {"per_second": 10001}}),
            "rate_limit.per_second",
        ),
        (json!({"rate_limit": {}}), "rate_limit.per_second"),
        (
            json!({"rate_limit": {"per_second": 5, "burst": 0}}),
            "rate_limit.burst",
        ),
        (
            json!({"rate_limit": {"per_second": 5, "burst": -1}}),
            "rate_limit.burst",
        ),
        (
            json!({"rate_limit": {"per_second": 5, "burst": 3}, "fifo": true}),
            "fifo",
        ),
        (
            json!({"rate_limit": {"per_second": 5, "every": 3}}),
            "every",
        ),
        (json!({"fifo": "yes"}), "fifo"),
    ];
    for (extra, field) in &bad {
        let r = api.post("/v1/endpoints", &with(extra.clone())).await;
        r.expect_error(400, "VALIDATION_ERROR");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(field),
            "{extra}: {msg:?} does not name `{field}`"
        );
    }
    let list = api.get("/v1/endpoints").await.expect(200).clone();
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "nothing created");

    let (id, _, _) = api
        .create_endpoint(with(json!({"rate_limit": {"per_second": 5, "burst": 2}})))
        .await;
    let path = format!("/v1/endpoints/{id}");
    let before = api.get(&path).await.expect(200).clone();
    let bad_patches = [
        (
            json!({"rate_limit": {"per_second": 0}}),
            "rate_limit.per_second",
        ),
        (
            json!({"rate_limit": {"per_second": 1, "burst": 0}}),
            "rate_limit.burst",
        ),
        // The current burst of 2 is more than FIFO can honour.
        (json!({"fifo": true}), "fifo"),
        (json!({"fifo": true, "name": "changed"}), "fifo"),
    ];
    for (patch, field) in &bad_patches {
        let r = api.patch(&path, patch).await;
        r.expect_error(400, "VALIDATION_ERROR");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(field),
            "{patch}: {msg:?} does not name `{field}`"
        );
    }
    assert_eq!(api.get(&path).await.expect(200).clone(), before);
    // Burst 1 and FIFO in one change is fine; then a burst above 1 names the burst.
    let ok = json!({"fifo": true, "rate_limit": {"per_second": 5}});
    api.patch(&path, &ok).await.expect(200);
    let r = api
        .patch(&path, &json!({"rate_limit": {"per_second": 5, "burst": 4}}))
        .await;
    r.expect_error(400, "VALIDATION_ERROR");
    assert!(r.text.contains("rate_limit.burst"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fifo_head_waiting_beyond_the_horizon_holds_the_line_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    fail_then_ok(&rx, "/line", 1, 503);
    // The head's one retry waits 4 s, beyond the 1 s horizon: the shard keeps it all the same,
    // and a restart reads it back from disk before anything behind it may go.
    let cfg = common::crash::crash_config(dir.path())
        .set("scheduler", "horizon", "\"1s\"")
        .set("retry", "schedule", "[\"4s\"]");
    let mut d = Daemon::start(dir.path(), &cfg).await;
    fifo_endpoint(&d.api, &rx, "line", "/line").await;
    let n = 4;
    batch(&d.api, n).await;
    let first = rx.wait_for_path("/line", 1, PATIENCE).await[0].clone();
    assert_eq!((number(&first), first.status), (0, 503));
    // Past the horizon, nothing behind the head has gone.
    tokio::time::sleep(millis(1500)).await;
    assert_eq!(
        rx.requests_to("/line").len(),
        1,
        "{}",
        describe(&rx.requests())
    );
    d.proc.sigterm();
    d.proc.expect_exit(PATIENCE).await;
    drop(d);

    let _d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let reqs = rx.wait_for_path("/line", n + 1, PATIENCE).await;
    // (The schedule's 4 s, less its jitter of up to 10%.)
    let order: Vec<u64> = reqs.iter().map(number).collect();
    assert_eq!(order, [0, 0, 1, 2, 3], "{}", describe(&reqs));
    assert!(reqs[1..].iter().all(|r| r.is_success()));
    assert!(
        reqs[1].at - first.at >= Duration::from_millis(3500),
        "the head's retry came {:?} after its failure",
        reqs[1].at - first.at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_turned_fifo_holds_new_deliveries_behind_a_retry_waiting_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    fail_then_ok(&rx, "/turned", 1, 503);
    let cfg = Config::new(dir.path())
        .set("scheduler", "horizon", "\"1s\"")
        .set("retry", "schedule", "[\"4s\"]");
    let d = Daemon::start(dir.path(), &cfg).await;
    let (id, _, _) = d
        .api
        .create_endpoint(
            json!({"name": "turned", "url": rx.url("/turned"), "event_types": ["job.*"]}),
        )
        .await;
    batch(&d.api, 1).await;
    let first = rx.wait_for_path("/turned", 1, PATIENCE).await[0].clone();
    assert_eq!(first.status, 503);
    // Its retry is 4 s away, beyond the 1 s horizon: once recorded, only the store has it.
    let list = format!("/v1/endpoints/{id}/deliveries?status=failed");
    let deadline = std::time::Instant::now() + PATIENCE;
    while d.api.get(&list).await.expect(200)["data"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(std::time::Instant::now() < deadline, "no retry recorded");
        tokio::time::sleep(millis(20)).await;
    }
    d.api
        .patch(&format!("/v1/endpoints/{id}"), &json!({"fifo": true}))
        .await
        .expect(200);
    let items: Vec<Value> = (1..4)
        .map(|i| json!({"type": "job.completed", "data": {"n": i}}))
        .collect();
    d.api
        .post("/v1/events/batch", &Value::Array(items))
        .await
        .expect(202);
    let reqs = rx.wait_for_path("/turned", 5, PATIENCE).await;
    let order: Vec<u64> = reqs.iter().map(number).collect();
    assert_eq!(order, [0, 0, 1, 2, 3], "{}", describe(&reqs));
    assert!(reqs[1].at - first.at >= Duration::from_millis(3500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_fifo_head_lets_the_next_go_and_a_manual_retry_sends_it_again() {
    // One retry, then the delivery is dead-lettered.
    let (_dir, rx, d) = setup(|c| c.set("retry", "schedule", r#"["200ms"]"#)).await;
    let api = &d.api;
    fail_then_ok(&rx, "/dead", 2, 500);
    let (id, _, _) = fifo_endpoint(api, &rx, "dead", "/dead").await;
    let n = 4;
    batch(api, n).await;
    let reqs = rx.wait_for_path("/dead", n + 1, PATIENCE).await;
    let order: Vec<u64> = reqs.iter().map(number).collect();
    assert_eq!(order, [0, 0, 1, 2, 3], "{}", describe(&reqs));
    // The head was dead-lettered, the only failed one.
    let head = dead_lettered(api, &id).await;
    let page = api
        .get(&format!("/v1/endpoints/{id}/deliveries?status=failed"))
        .await
        .expect(200)
        .clone();
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    let head = head.as_str();
    api.post(&format!("/v1/deliveries/{head}/retry"), &json!({}))
        .await
        .expect(202);
    let reqs = rx.wait_for_path("/dead", n + 2, PATIENCE).await;
    assert_eq!(number(&reqs[n + 1]), 0);
    api.wait_delivery_status(head, "delivered", PATIENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manual_retry_goes_back_to_its_place_in_the_line() {
    let (_dir, rx, d) = setup(|c| c.set("retry", "schedule", r#"["200ms"]"#)).await;
    let api = &d.api;
    // The oldest delivery fails twice (dead-lettered); the next one is slow to answer.
    rx.script(
        "/place",
        Reply::Sequence(vec![
            Reply::Status(500),
            Reply::Status(500),
            Reply::Slow {
                delay: secs(1),
                status: 204,
            },
            Reply::Status(204),
        ]),
    );
    let (id, _, _) = fifo_endpoint(api, &rx, "place", "/place").await;
    batch(api, 1).await;
    rx.wait_for_path("/place", 2, PATIENCE).await;
    let head = dead_lettered(api, &id).await;
    let items: Vec<Value> = (1..4)
        .map(|i| json!({"type": "job.completed", "data": {"n": i}}))
        .collect();
    api.post("/v1/events/batch", &Value::Array(items))
        .await
        .expect(202);
    // While the first of the new ones is in flight, the dead-lettered head is retried: it goes
    // next, before the newer ones still waiting.
    rx.wait_for_path("/place", 3, PATIENCE).await;
    api.post(&format!("/v1/deliveries/{head}/retry"), &json!({}))
        .await
        .expect(202);
    let reqs = rx.wait_for_path("/place", 6, PATIENCE).await;
    let order: Vec<u64> = reqs.iter().map(number).collect();
    assert_eq!(order, [0, 0, 1, 0, 2, 3], "{}", describe(&reqs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_to_a_fifo_endpoint_goes_in_event_order() {
    let (_dir, rx, d) =
        setup(|c| c.set("retry", "schedule", r#"["150ms","150ms","150ms","150ms"]"#)).await;
    let api = &d.api;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 1000;
    let n = 6;
    batch(api, n).await;
    // Made after the events: it gets them only by a replay. Its first two answers fail.
    fail_then_ok(&rx, "/replayed", 2, 500);
    let (id, _, _) = fifo_endpoint(api, &rx, "replayed", "/replayed").await;
    api.post(
        &format!("/v1/endpoints/{id}/replay"),
        &json!({ "since": since }),
    )
    .await
    .expect(202);
    let reqs = rx.wait_for_path("/replayed", n + 2, PATIENCE).await;
    let order: Vec<u64> = reqs.iter().map(number).collect();
    assert_eq!(order, [0, 0, 0, 1, 2, 3, 4, 5], "{}", describe(&reqs));
}
