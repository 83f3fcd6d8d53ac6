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

/// `DELETE /v1/endpoints/{id}` deletes the endpoint's deliveries (delivered and waiting for a
/// retry) with their attempts, in the background; the tenant's other endpoints keep theirs; a
/// kill -9 and restart brings none of them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_an_endpoint_deletes_its_deliveries() {
    let (dir, rx, mut d) = setup(|c| c.set("retry", "schedule", "[\"1h\"]")).await;
    rx.script("/down", Reply::Status(503));
    let kinds = json!(["instance.*"]);
    let (ok, _, _) = d
        .api
        .create_endpoint(json!({"name": "ok", "url": rx.url("/ok"), "event_types": kinds}))
        .await;
    let (down, _, _) = d
        .api
        .create_endpoint(json!({"name": "down", "url": rx.url("/down"), "event_types": kinds}))
        .await;
    let (mut gone, mut kept) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let id = format!("del-{i}");
        d.api
            .post_event(json!({"type": "instance.failed", "id": id, "data": {}}))
            .await;
        for dl in d.api.wait_event_deliveries(&id, 2, PATIENCE).await {
            let did = dl["id"].as_str().unwrap().to_owned();
            if dl["endpoint_id"] == json!(down) {
                d.api.wait_delivery_status(&did, "retrying", PATIENCE).await;
                gone.push(did);
            } else {
                d.api
                    .wait_delivery_status(&did, "delivered", PATIENCE)
                    .await;
                kept.push(did);
            }
        }
    }
    assert_eq!((gone.len(), kept.len()), (3, 3));

    d.api
        .delete(&format!("/v1/endpoints/{down}"))
        .await
        .expect(204);
    for id in &gone {
        wait_for(
            || async {
                match d.api.get(&format!("/v1/deliveries/{id}")).await {
                    r if r.status == 404 => Ok(()),
                    r => Err(format!("{r:?}")),
                }
            },
            "the deleted endpoint's delivery to be deleted",
            PATIENCE,
        )
        .await;
    }
    let listed = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (i, id) in kept.iter().enumerate() {
        d.api.get(&format!("/v1/deliveries/{id}")).await.expect(200);
        let ev = d.api.event(&format!("del-{i}")).await;
        assert_eq!(listed(&ev["deliveries"]), vec![id.clone()]);
    }
    let page = d.api.get(&format!("/v1/endpoints/{ok}/deliveries")).await;
    assert_eq!(listed(&page.expect(200)["data"]).len(), 3);

    d.proc.kill9();
    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    for id in &gone {
        d.api
            .get(&format!("/v1/deliveries/{id}"))
            .await
            .expect_error(404, "NOT_FOUND");
    }
    for id in &kept {
        d.api.get(&format!("/v1/deliveries/{id}")).await.expect(200);
    }
}
