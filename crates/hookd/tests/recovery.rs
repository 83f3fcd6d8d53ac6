//! Crash and restart: everything acknowledged with 202 is delivered after kill -9; SIGTERM
//! exits 0; scheduled retries survive a restart. sled's own periodic flush is off in all of
//! them ([`crash_config`]), so they prove hookd's flushes.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::crash::crash_config;
use common::*;
use hyper::Method;
use serde_json::json;

/// A receiver path that holds every request far longer than the test lasts, so deliveries
/// are in flight (not delivered) when the daemon is killed.
const HOLD: &str = "/hold";

fn hold_config(dir: &std::path::Path) -> Config {
    crash_config(dir).set("sender", "timeout", "\"30s\"")
}

/// A receiver whose `HOLD` path never answers in time, a daemon, and an endpoint for every
/// event type pointing there: (receiver, daemon, endpoint id, secret).
async fn start_holding(dir: &std::path::Path) -> (Receiver, Daemon, String, String) {
    let rx = Receiver::start().await;
    rx.script(
        HOLD,
        Reply::Slow {
            delay: secs(120),
            status: 200,
        },
    );
    let d = Daemon::start(dir, &hold_config(dir)).await;
    let (ep, secret, _) = d
        .api
        .create_endpoint(json!({"name": "hold", "url": rx.url(HOLD), "event_types": ["*"]}))
        .await;
    (rx, d, ep, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_after_ack_delivers_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (rx, mut d, _ep, secret) = start_holding(dir.path()).await;
    let ev = d
        .api
        .post_event(json!({"type": "instance.running", "id": "survivor", "data": {"k": [1, 2]}}))
        .await;
    assert_eq!(ev["id"], "survivor");
    let created_at = ev["created_at"].clone();
    d.proc.kill9();
    drop(d);

    rx.script(HOLD, Reply::Status(204));
    let restarted = Instant::now();
    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let reqs = rx
        .wait_until("survivor delivered after restart", PATIENCE, |r| {
            r.iter()
                .any(|x| x.at >= restarted && x.webhook_id() == "survivor" && x.is_success())
        })
        .await;
    let req = reqs
        .iter()
        .find(|x| x.at >= restarted && x.webhook_id() == "survivor")
        .unwrap();
    assert_signed(req, &secret);
    verify_with_python(&[(&secret, req)]);
    let body = req.json();
    assert_eq!(body["id"], "survivor");
    assert_eq!(body["created_at"], created_at);
    assert_eq!(body["data"], json!({"k": [1, 2]}));

    let ds = d.api.wait_event_deliveries("survivor", 1, PATIENCE).await;
    let dlv = ds[0]["id"].as_str().unwrap().to_string();
    d.api
        .wait_delivery_status(&dlv, "delivered", PATIENCE)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_during_concurrent_ingest_loses_no_acked_event() {
    const N: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let (rx, mut d, ep_id, secret) = start_holding(dir.path()).await;

    // Post N events concurrently; kill -9 as soon as most have been acknowledged, while the
    // rest may still be in flight.
    let acked = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..N {
        let api = d.api.clone();
        let acked = acked.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("crash-{i:02}");
            let body =
                serde_json::to_vec(&json!({"type": "job.created", "id": id, "data": {"i": i}}))
                    .unwrap();
            let r = api
                .try_send(Method::POST, "/v1/events", Some(&body), &[])
                .await;
            let ok = matches!(&r, Ok(resp) if resp.status == 202);
            if let Ok(resp) = &r {
                assert!(
                    resp.status == 202,
                    "POST {id} before the kill answered {}: {}",
                    resp.status,
                    resp.text
                );
            }
            if ok {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            done.fetch_add(1, Ordering::SeqCst);
            (id, ok)
        }));
    }
    wait_for(
        || async {
            let (a, n) = (acked.load(Ordering::SeqCst), done.load(Ordering::SeqCst));
            if a >= N * 3 / 5 || n >= N {
                Ok(())
            } else {
                Err(format!("{a} acknowledged, {n} answered"))
            }
        },
        "most posts acknowledged",
        PATIENCE,
    )
    .await;
    d.proc.kill9();
    let mut acked_ids = BTreeSet::new();
    for t in tasks {
        let (id, ok) = t.await.expect("post task");
        if ok {
            acked_ids.insert(id);
        }
    }
    drop(d);
    assert!(acked_ids.len() >= N * 3 / 5, "{acked_ids:?}");
    eprintln!(
        "{} of {N} events acknowledged before kill -9",
        acked_ids.len()
    );

    rx.script(HOLD, Reply::Status(204));
    let restarted = Instant::now();
    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let delivered_after = |reqs: &[Recorded]| -> BTreeSet<String> {
        reqs.iter()
            .filter(|x| x.at >= restarted && x.is_success())
            .map(|x| x.webhook_id().to_string())
            .collect()
    };
    let reqs = rx
        .wait_until(
            "every acknowledged event delivered after restart",
            PATIENCE,
            |r| {
                let got = delivered_after(r);
                acked_ids.iter().all(|id| got.contains(id))
            },
        )
        .await;
    let got = delivered_after(&reqs);
    let missing: Vec<&String> = acked_ids.iter().filter(|id| !got.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    for r in &reqs {
        assert!(
            r.webhook_id().starts_with("crash-"),
            "unexpected webhook-id {:?}",
            r.webhook_id()
        );
    }
    let items: Vec<(&str, &Recorded)> = reqs
        .iter()
        .filter(|x| x.at >= restarted)
        .take(10)
        .map(|r| (secret.as_str(), r))
        .collect();
    verify_with_python(&items);

    // The API agrees: at least every acknowledged event has a delivered delivery.
    let path = format!("/v1/endpoints/{ep_id}/deliveries?status=delivered&limit=500");
    wait_for(
        || async {
            let v = d.api.get(&path).await.expect(200).clone();
            let n = v["data"].as_array().unwrap().len();
            if n >= acked_ids.len() {
                Ok(())
            } else {
                Err(format!(
                    "{n} delivered deliveries listed, {} acknowledged",
                    acked_ids.len()
                ))
            }
        },
        "a delivered delivery for every acknowledged event",
        PATIENCE,
    )
    .await;
}

/// A delivery waiting for its retry keeps its attempt history and its deadline across a
/// restart: the retry is not sent early, and the failed attempt stays recorded.
async fn scheduled_retry_survives_restart(kill9: bool) {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.script(
        "/flaky",
        Reply::FailThenOk {
            fails: 1,
            fail_status: 503,
            ok_status: 200,
        },
    );
    let cfg = crash_config(dir.path()).set("retry", "schedule", "[\"2500ms\", \"2500ms\"]");
    let mut d = Daemon::start(dir.path(), &cfg).await;
    let (ep, _, _) = d
        .api
        .create_endpoint(
            json!({"name": "flaky", "url": rx.url("/flaky"), "event_types": ["job.*"]}),
        )
        .await;
    d.api
        .post_event(json!({"type": "job.failed", "id": "retry-me", "data": {}}))
        .await;
    let first = rx.wait_for_path("/flaky", 1, PATIENCE).await[0].clone();
    assert_eq!(first.status, 503);
    let ds = d.api.wait_event_deliveries("retry-me", 1, PATIENCE).await;
    let dlv = ds[0]["id"].as_str().unwrap().to_string();
    let dv = d.api.wait_delivery_status(&dlv, "retrying", PATIENCE).await;
    assert!(dv["next_attempt_at"].is_string(), "{dv}");
    if kill9 {
        // An attempt's outcome is flushed by a group flush right after it is recorded, but the
        // API can show it a moment (one fsync) before that flush ends: wait for the flush.
        wait_metrics(&d.api, "the attempt's outcome flushed", |m| {
            m.get("hookd_outcome_flushes_total") >= 1
        })
        .await;
        d.proc.kill9();
    } else {
        d.proc.sigterm();
        let st = d.proc.expect_exit(PATIENCE).await;
        assert_eq!(
            st.code(),
            Some(0),
            "exit status {st}\n{}",
            d.proc.dump_logs()
        );
    }
    drop(d);

    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let reqs = rx.wait_for_path("/flaky", 2, PATIENCE).await;
    assert_eq!(reqs[1].webhook_id(), "retry-me");
    assert_eq!(reqs[1].status, 200);
    let gap = reqs[1].at - first.at;
    assert!(
        gap >= millis(2400),
        "the retry came {gap:?} after the first attempt; the schedule says 2500ms"
    );
    let dv = d
        .api
        .wait_delivery_status(&dlv, "delivered", PATIENCE)
        .await;
    let attempts = dv["attempts"].as_array().expect("attempts list");
    let codes: Vec<_> = attempts.iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(codes, vec![json!(503), json!(200)], "{dv}");
    let numbers: Vec<_> = attempts.iter().map(|a| a["number"].clone()).collect();
    assert_eq!(numbers, vec![json!(1), json!(2)], "{dv}");
    let (at1, at2) = (unix_ms(&attempts[0]["at"]), unix_ms(&attempts[1]["at"]));
    assert!(at2 >= at1 + 2500, "attempts at {at1} and {at2}: {dv}");
    // The retry was the restarted daemon's only attempt, and none is left.
    wait_endpoint_settled(&d.api, &ep).await;
    wait_attempts(&d.api, 1).await;
    assert_eq!(rx.count(), 2, "{}", describe(&rx.requests()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_keeps_scheduled_retry() {
    scheduled_retry_survives_restart(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_keeps_scheduled_retry() {
    scheduled_retry_survives_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_exits_zero_and_restart_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // A grace far longer than the test may last: exiting in time shows it did not wait for it.
    let cfg = crash_config(dir.path()).set("shutdown", "grace", "\"10m\"");
    let mut d = Daemon::start(dir.path(), &cfg).await;
    let (ep_id, _, _) = d
        .api
        .create_endpoint(json!({"name": "ok", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;
    d.api
        .post_event(json!({"type": "deployment.running", "id": "before-term", "data": {}}))
        .await;
    rx.wait_for(1, PATIENCE).await;
    let ds = d
        .api
        .wait_event_deliveries("before-term", 1, PATIENCE)
        .await;
    let dlv = ds[0]["id"].as_str().unwrap().to_string();
    d.api
        .wait_delivery_status(&dlv, "delivered", PATIENCE)
        .await;

    // Nothing in flight: it exits 0 without waiting out its grace.
    d.proc.sigterm();
    let st = d.proc.expect_exit(PATIENCE).await;
    assert_eq!(
        st.code(),
        Some(0),
        "exit status {st}\n{}",
        d.proc.dump_logs()
    );
    drop(d);

    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let ep = d
        .api
        .get(&format!("/v1/endpoints/{ep_id}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(ep["stats"]["delivered"], 1, "{ep}");
    let ev = d.api.event("before-term").await;
    assert_eq!(ev["deliveries"][0]["status"], "delivered", "{ev}");
    // The endpoint still works after the restart, and the old event is neither fanned out nor
    // sent again.
    d.api
        .post_event(json!({"type": "deployment.stopped", "id": "after-restart", "data": {}}))
        .await;
    rx.wait_for(2, PATIENCE).await;
    wait_fanned_out(&d.api, 1).await;
    wait_endpoint_settled(&d.api, &ep_id).await;
    wait_attempts(&d.api, 1).await;
    let ids: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.webhook_id().to_string())
        .collect();
    assert_eq!(ids, vec!["before-term", "after-restart"]);
}
