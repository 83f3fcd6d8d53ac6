//! No endpoint starves another: endpoints whose receivers hold every request until the timeout
//! next to a healthy one.

mod common;

use common::*;
use serde_json::{json, Value};

/// One shard of 16 slots, 4 per endpoint: five hanging endpoints could hold all 16 (and did,
/// before the budget was shared). They hold their requests far longer than the test runs, so the
/// healthy endpoint's deliveries can only arrive through the slots its share leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_endpoints_leave_a_healthy_one_its_share() {
    let (_dir, rx, d) = setup(|c| {
        c.set("scheduler", "shards", "1")
            .set("sender", "max_in_flight", "16")
            .set("sender", "per_endpoint_concurrency", "4")
            .set("sender", "timeout", "\"300s\"")
    })
    .await;
    let api = &d.api;
    for i in 0..5 {
        let path = format!("/hang/{i}");
        rx.script(&path, Reply::Hang);
        api.create_endpoint(
            json!({"name": path, "url": rx.url(&path), "event_types": ["job.started"]}),
        )
        .await;
    }
    for _ in 0..10 {
        api.post_event(json!({"type": "job.started", "data": {}}))
            .await;
    }
    // Every hanging endpoint holds a request: the shard has started all it would for them (it
    // starts what it may in one pass), and they asked for 20 slots.
    rx.wait_until("the hanging endpoints to hold requests", secs(30), |reqs| {
        (0..5).all(|i| reqs.iter().any(|r| r.path == format!("/hang/{i}")))
    })
    .await;

    api.create_endpoint(
        json!({"name": "ok", "url": rx.url("/ok"), "event_types": ["job.completed"]}),
    )
    .await;
    for i in 0..20 {
        api.post_event(json!({"type": "job.completed", "data": {"n": i}}))
            .await;
    }
    let ok = rx.wait_for_path("/ok", 20, secs(30)).await;
    assert_eq!(ok.len(), 20);
    // No hanging request ended (the timeout is 300 s), so none of their slots was freed.
    let hanging = rx.requests().iter().filter(|r| r.path != "/ok").count();
    assert!((5..16).contains(&hanging), "{hanging} hanging requests");
}

/// Three 500s in a row open the endpoint's breaker: its seven other deliveries wait without an
/// attempt (none is spent on a receiver known to be failing). Once it answers again, the probe
/// closes the breaker and they all go out, each on its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_endpoint_waits_behind_its_breaker_and_resumes() {
    let (_dir, rx, d) = setup(|c| {
        c.set("sender", "per_endpoint_concurrency", "1")
            .set("sender", "breaker_failures", "3")
            // Long enough that no probe comes before the receiver is fixed below.
            .set("sender", "breaker_interval", "\"20s\"")
            .set("retry", "schedule", "[\"1h\"]")
    })
    .await;
    let api = &d.api;
    rx.script("/down", Reply::Status(500));
    let body = json!({"name": "down", "url": rx.url("/down"), "event_types": ["job.failed"]});
    let (ep, _, _) = api.create_endpoint(body).await;
    let batch = Value::Array(vec![json!({"type": "job.failed", "data": {}}); 10]);
    api.post("/v1/events/batch", &batch).await.expect(202);

    let path = format!("/v1/endpoints/{ep}");
    let open = wait_json(api, &path, |v| v["health"]["breaker"] == "open").await;
    assert_eq!(open["health"]["consecutive_failures"], 3, "{open}");
    assert_eq!(open["health"]["waiting"], 7, "{open}");
    assert_eq!(open["health"]["concurrency"], 0, "{open}");
    // Three failures in a row: a third of the way to "all failed", and failing.
    let share = open["health"]["failure_share"].as_f64().unwrap();
    assert!((0.3..0.35).contains(&share), "{open}");
    assert_eq!(open["health"]["failing"], true, "{open}");
    // Its deliveries wait behind the breaker; no healthy endpoint is delivering to yield to.
    assert_eq!(open["health"]["yielding"], false, "{open}");
    assert_eq!(rx.requests_to("/down").len(), 3);

    rx.script("/down", Reply::Status(204));
    let done = wait_json(api, &path, |v| v["stats"]["delivered"] == 7).await;
    assert_eq!(done["health"]["breaker"], "closed", "{done}");
    assert_eq!(done["health"]["failing"], false, "{done}");
    assert!(
        done["health"]["failure_share"].as_f64().unwrap() < 0.25,
        "{done}"
    );
    assert_eq!(done["stats"]["retrying"], 3, "{done}");
    assert_eq!(rx.requests_to("/down").len(), 10);
    let list = api
        .get(&format!("/v1/endpoints/{ep}/deliveries?limit=100"))
        .await;
    let list = list.expect(200)["data"].as_array().unwrap().clone();
    assert_eq!(list.len(), 10);
    assert!(list.iter().all(|d| d["attempts"] == 1), "{list:?}");
}

/// Polls `GET path` (up to 60 s: a breaker interval of 20 s fits) until `pred` holds.
async fn wait_json(api: &Api, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + secs(60);
    loop {
        let v = api.get(path).await.expect(200).clone();
        if pred(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{path}: {v}");
        tokio::time::sleep(millis(50)).await;
    }
}

/// A new endpoint starts slow, timeouts halve its concurrency (shown in its health) and
/// successes grow it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_halves_on_timeouts_and_grows_back() {
    let (_dir, rx, d) = setup(|c| {
        c.set("sender", "timeout", "\"1s\"").set(
            "retry",
            "schedule",
            &format!("[{}]", ["\"200ms\""; 8].join(",")),
        )
    })
    .await;
    let api = &d.api;
    rx.script("/slow", Reply::Hang);
    let body = json!({"name": "slow", "url": rx.url("/slow"), "event_types": ["job.failed"]});
    let (ep, _, _) = api.create_endpoint(body).await;
    let batch = Value::Array(vec![json!({"type": "job.failed", "data": {}}); 3]);
    api.post("/v1/events/batch", &batch).await.expect(202);
    let path = format!("/v1/endpoints/{ep}");
    // A new endpoint starts at 2 attempts in flight (slow start). Three timeouts: 2 -> 1 -> 1
    // -> 1 (three failures do not open the breaker, five would).
    let fresh = api.get(&path).await.expect(200).clone();
    assert!(
        fresh["health"]["concurrency"].as_u64().unwrap() <= 2,
        "{fresh}"
    );
    let slow = wait_json(api, &path, |v| v["health"]["consecutive_failures"] == 3).await;
    assert_eq!(slow["health"]["concurrency"], 1, "{slow}");
    assert_eq!(slow["health"]["breaker"], "closed", "{slow}");
    // Answering again: each of the three successes adds one, to 4 (less if a retry sent before
    // the receiver was fixed timed out once more; never below 2).
    rx.script("/slow", Reply::Status(204));
    let healed = wait_json(api, &path, |v| v["stats"]["delivered"] == 3).await;
    assert_eq!(healed["health"]["consecutive_failures"], 0, "{healed}");
    let grown = healed["health"]["concurrency"].as_u64().unwrap();
    assert!((2..=4).contains(&grown), "{healed}");
}

/// An open breaker stays open across a kill -9 and restart: the endpoint's deliveries, old and
/// new, wait for the probe instead of each spending an attempt on a receiver known to fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_breaker_stays_open_after_a_restart() {
    let (dir, rx, mut d) = setup(|c| {
        c.set("sender", "per_endpoint_concurrency", "1")
            .set("sender", "breaker_failures", "3")
            .set("sender", "breaker_interval", "\"1h\"")
            .set("sender", "breaker_max_interval", "\"1h\"")
            .set("retry", "schedule", "[\"1h\"]")
    })
    .await;
    rx.script("/down", Reply::Status(500));
    let body = json!({"name": "down", "url": rx.url("/down"), "event_types": ["job.failed"]});
    let (ep, _, _) = d.api.create_endpoint(body).await;
    let batch = Value::Array(vec![json!({"type": "job.failed", "data": {}}); 5]);
    d.api.post("/v1/events/batch", &batch).await.expect(202);
    let path = format!("/v1/endpoints/{ep}");
    let open = wait_json(&d.api, &path, |v| v["health"]["waiting"] == 2).await;
    assert_eq!(open["health"]["breaker"], "open", "{open}");
    assert_eq!(rx.requests_to("/down").len(), 3);

    d.proc.kill9();
    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let batch = Value::Array(vec![json!({"type": "job.failed", "data": {}}); 3]);
    d.api.post("/v1/events/batch", &batch).await.expect(202);
    let open = wait_json(&d.api, &path, |v| v["health"]["waiting"] == 5).await;
    assert_eq!(open["health"]["breaker"], "open", "{open}");
    assert_eq!(open["health"]["consecutive_failures"], 3, "{open}");
    tokio::time::sleep(millis(500)).await;
    assert_eq!(
        rx.requests_to("/down").len(),
        3,
        "attempts made behind the breaker"
    );
}
