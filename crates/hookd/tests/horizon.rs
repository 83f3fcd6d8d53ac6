//! The scheduler's horizon: shards hold only deadlines due within `[scheduler] horizon`; later
//! retries wait on disk and are paged in as time comes near, also after a restart.

mod common;

use std::time::{Duration, Instant};

use common::crash::crash_config;
use common::*;
use serde_json::json;

/// A daemon with a 1 s horizon and one retry 4 s after a first failure, an endpoint whose
/// first answer is 503, and one event: (receiver, daemon, delivery id). Returns once the
/// delivery waits for its retry.
async fn failed_once(dir: &std::path::Path) -> (Receiver, Daemon, String, Instant) {
    let rx = Receiver::start().await;
    rx.script(
        "/later",
        Reply::FailThenOk {
            fails: 1,
            fail_status: 503,
            ok_status: 200,
        },
    );
    let cfg = crash_config(dir)
        .set("scheduler", "horizon", "\"1s\"")
        .set("retry", "schedule", "[\"4s\"]");
    let d = Daemon::start(dir, &cfg).await;
    d.api
        .create_endpoint(json!({"name": "later", "url": rx.url("/later"), "event_types": ["*"]}))
        .await;
    d.api
        .post_event(json!({"type": "job.failed", "id": "far", "data": {}}))
        .await;
    let first = rx.wait_for_path("/later", 1, PATIENCE).await[0].clone();
    let failed_at = Instant::now();
    assert_eq!(first.status, 503);
    let ds = d.api.wait_event_deliveries("far", 1, PATIENCE).await;
    let id = ds[0]["id"].as_str().unwrap().to_string();
    d.api.wait_delivery_status(&id, "retrying", PATIENCE).await;
    (rx, d, id, failed_at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_beyond_the_horizon_is_paged_in_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, d, id, failed_at) = failed_once(dir.path()).await;
    // The shard dropped the job (4 s is beyond its 1 s horizon): only the pager brings it back.
    let reqs = rx.wait_for_path("/later", 2, PATIENCE).await;
    assert_eq!(reqs[1].status, 200);
    assert_eq!(reqs[1].webhook_id(), "far");
    assert!(
        failed_at.elapsed() >= Duration::from_secs(3),
        "not before its time"
    );
    d.api.wait_delivery_status(&id, "delivered", PATIENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_leaves_far_deadlines_on_disk_and_pages_them_in() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, mut d, id, _) = failed_once(dir.path()).await;
    d.proc.sigterm();
    d.proc.expect_exit(PATIENCE).await;
    drop(d);
    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let reqs = rx.wait_for_path("/later", 2, PATIENCE).await;
    assert_eq!(reqs[1].webhook_id(), "far");
    d.api.wait_delivery_status(&id, "delivered", PATIENCE).await;
    let m = metrics(&d.api).await;
    assert_eq!(m.get("hookd_deliveries_pending"), 0, "{m:?}");
}
