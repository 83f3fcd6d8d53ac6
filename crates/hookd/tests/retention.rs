//! `[retention]`: finished deliveries, their attempts and events, and idempotency keys are
//! deleted once past their window; deliveries still waiting for a retry are kept.

mod common;

use std::time::Instant;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_and_idempotency_keys_are_deleted_after_their_window() {
    let (_dir, rx, d) = setup(|c| {
        c.set("retention", "history", "\"2s\"")
            .set("retention", "idempotency", "\"2s\"")
            .set("retry", "schedule", "[\"1h\"]")
    })
    .await;
    rx.script("/down", Reply::Status(503));
    let (ok, _, _) = d
        .api
        .create_endpoint(json!({"name": "ok", "url": rx.url("/ok"), "event_types": ["job.*"]}))
        .await;
    let (down, _, _) = d
        .api
        .create_endpoint(
            json!({"name": "down", "url": rx.url("/down"), "event_types": ["instance.*"]}),
        )
        .await;
    let body = r#"{"type":"job.completed","id":"ret-1","data":{}}"#;
    d.api
        .post_raw("/v1/events", body, &[("idempotency-key", "ret-key")])
        .await
        .expect(202);
    d.api
        .post_event(json!({"type": "instance.failed", "id": "ret-2", "data": {}}))
        .await;
    let done = d.api.wait_event_deliveries("ret-1", 1, PATIENCE).await;
    let done = done[0]["id"].as_str().unwrap().to_owned();
    d.api
        .wait_delivery_status(&done, "delivered", PATIENCE)
        .await;
    let waiting = d.api.wait_event_deliveries("ret-2", 1, PATIENCE).await;
    let waiting = waiting[0]["id"].as_str().unwrap().to_owned();
    d.api
        .wait_delivery_status(&waiting, "retrying", PATIENCE)
        .await;

    // The delivered one goes, with its event and from its endpoint's pages.
    let start = Instant::now();
    loop {
        let r = d.api.get("/v1/events/ret-1").await;
        if r.status == 404 {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "event still there after {PATIENCE:?}: {r:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    d.api
        .get(&format!("/v1/deliveries/{done}"))
        .await
        .expect_error(404, "NOT_FOUND");
    let page = d.api.get(&format!("/v1/endpoints/{ok}/deliveries")).await;
    assert_eq!(page.expect(200)["data"], json!([]));

    // The one waiting for its retry stays, with its event: a pass ran over both (same age).
    d.api
        .get(&format!("/v1/deliveries/{waiting}"))
        .await
        .expect(200);
    d.api.get("/v1/events/ret-2").await.expect(200);
    let page = d.api.get(&format!("/v1/endpoints/{down}/deliveries")).await;
    assert_eq!(page.expect(200)["data"].as_array().unwrap().len(), 1);

    // The idempotency key is forgotten: the same request makes the event again.
    d.api
        .post_raw("/v1/events", body, &[("idempotency-key", "ret-key")])
        .await
        .expect(202);
    let reqs = rx.wait_for_path("/ok", 2, PATIENCE).await;
    assert_eq!(reqs[1].webhook_id(), "ret-1");
}
