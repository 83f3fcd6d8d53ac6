//! No endpoint starves another: endpoints whose receivers hold every request until the timeout
//! next to a healthy one.

mod common;

use common::*;
use serde_json::json;

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
