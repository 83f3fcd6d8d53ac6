//! Bulk recovery: every failed delivery of an endpoint since a time, re-sent at once.

mod common;

use common::*;
use serde_json::json;

/// Posts one `job.failed` event and waits for its one delivery to be dead-lettered; returns it.
async fn dead_letter_one(api: &Api) -> serde_json::Value {
    let ev = api
        .post_event(json!({"type": "job.failed", "data": {}}))
        .await;
    let ds = api
        .wait_event_deliveries(ev["id"].as_str().unwrap(), 1, secs(30))
        .await;
    let id = ds[0]["id"].as_str().unwrap();
    api.wait_delivery_status(id, "dead_lettered", secs(30))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_deliveries_since_a_time_are_sent_again() {
    let (_dir, rx, d) = setup(|c| {
        c.set("retry", "schedule", "[\"100ms\"]")
            .set("sender", "breaker_failures", "100")
    })
    .await;
    let api = &d.api;
    rx.script("/flaky", Reply::Status(500));
    let body = json!({"name": "flaky", "url": rx.url("/flaky"), "event_types": ["job.failed"]});
    let (ep, _, _) = api.create_endpoint(body).await;
    let recover = format!("/v1/endpoints/{ep}/recover");

    let before = dead_letter_one(api).await;
    // Delivery ids carry their creation millisecond: the next ones are strictly later.
    tokio::time::sleep(millis(5)).await;
    let first = dead_letter_one(api).await;
    let second = dead_letter_one(api).await;
    let since = first["created_at"].clone();

    // Bad input: 400 naming the field, nothing sent.
    let future = json!({"since": unix_now() * 1000 + 3_600_000});
    for (bad, text) in [
        (json!({}), "`since` is required"),
        (json!({"since": "yesterday"}), "`since` must be RFC 3339"),
        (future, "`since` must not be in the future"),
        (json!({"since": 0, "extra": 1}), "extra"),
    ] {
        let r = api.post(&recover, &bad).await;
        r.expect_error(400, "VALIDATION_ERROR");
        assert!(r.text.contains(text), "{bad}: {}", r.text);
    }
    let sent = rx.requests_to("/flaky").len();
    assert_eq!(sent, 6, "two attempts of each of three deliveries");

    rx.script("/flaky", Reply::Status(204));
    let r = api.post(&recover, &json!({"since": since})).await;
    assert_eq!(r.expect(202), &json!({"scheduled": 2, "busy": 0}));
    for d in [&first, &second] {
        let id = d["id"].as_str().unwrap();
        let done = api.wait_delivery_status(id, "delivered", secs(30)).await;
        assert_eq!(done["attempts"].as_array().unwrap().len(), 3, "{done}");
    }
    // The one from before `since` stays dead-lettered, and was not sent again.
    let id = before["id"].as_str().unwrap();
    assert_eq!(api.delivery(id).await["status"], "dead_lettered");
    assert_eq!(rx.requests_to("/flaky").len(), sent + 2);

    // From the beginning (here from the command line): the older one too. A disabled endpoint
    // is refused.
    let run = d
        .cli()
        .run(&["endpoints", "recover", &ep, "--since", "0"])
        .await;
    run.ok();
    assert_eq!(
        (run.field("scheduled"), run.field("busy")),
        ("1".into(), "0".into()),
        "{run}"
    );
    api.patch(&format!("/v1/endpoints/{ep}"), &json!({"enabled": false}))
        .await
        .expect(200);
    let r = api.post(&recover, &json!({"since": 0})).await;
    r.expect_error(409, "CONFLICT");
}
