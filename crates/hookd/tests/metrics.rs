//! `GET /metrics` after known scenarios: attempt outcomes, the latency and lag histograms and
//! the pending gauge have exactly the values the scenario makes (docs/OPERATIONS.md).

mod common;

use common::*;
use serde_json::json;

const OUTCOMES: &str = "hookd_attempt_outcomes_total";
const LATENCY: &str = "hookd_attempt_duration_seconds";
const LAG: &str = "hookd_delivery_lag_seconds";
const PENDING: &str = "hookd_deliveries_pending";

/// Every outcome's counter, in the order the daemon renders them.
fn outcomes(m: &Metrics) -> Vec<(&'static str, u64)> {
    [
        "success",
        "http_4xx",
        "http_5xx",
        "http_other",
        "timeout",
        "connect_error",
        "tls_error",
        "dns_error",
        "io_error",
        "not_sent",
    ]
    .into_iter()
    .map(|o| (o, m.get(&format!("{OUTCOMES}{{outcome=\"{o}\"}}"))))
    .collect()
}

fn bucket(m: &Metrics, histogram: &str, le: &str) -> u64 {
    m.get(&format!("{histogram}_bucket{{le=\"{le}\"}}"))
}

/// `_count`, the `+Inf` bucket, and buckets that never decrease.
#[track_caller]
fn histogram_count(m: &Metrics, histogram: &str, les: &[&str]) -> u64 {
    let count = m.get(&format!("{histogram}_count"));
    assert_eq!(bucket(m, histogram, "+Inf"), count, "{histogram}: {m:?}");
    let cumulative: Vec<u64> = les.iter().map(|le| bucket(m, histogram, le)).collect();
    assert!(
        cumulative.windows(2).all(|w| w[0] <= w[1]) && cumulative.last() <= Some(&count),
        "{histogram} buckets are not cumulative: {cumulative:?} then {count}"
    );
    count
}

const LATENCY_LES: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
];
const LAG_LES: [&str; 17] = [
    "0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "300", "900", "3600",
    "21600", "86400", "172800",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outcomes_and_histograms_count_a_known_scenario() {
    // Retries after 200 ms and 400 ms (the harness's schedule), then dead letter; 2 s timeout.
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let m = metrics(api).await;
    assert!(outcomes(&m).iter().all(|(_, n)| *n == 0), "{m:?}");
    assert_eq!(histogram_count(&m, LATENCY, &LATENCY_LES), 0);
    assert_eq!(histogram_count(&m, LAG, &LAG_LES), 0);
    assert_eq!(m.get(PENDING), 0);

    rx.script(
        "/flaky",
        Reply::FailThenOk {
            fails: 2,
            fail_status: 503,
            ok_status: 200,
        },
    );
    rx.script("/gone", Reply::Status(404));
    rx.script(
        "/slow",
        // Far past the 2 s timeout: only the timeout ends these attempts.
        Reply::Slow {
            delay: secs(60),
            status: 200,
        },
    );
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut eps = Vec::new();
    for (name, url) in [
        ("ok", rx.url("/ok")),
        ("flaky", rx.url("/flaky")),
        ("gone", rx.url("/gone")),
        ("slow", rx.url("/slow")),
        ("closed", format!("http://{closed}/x")),
    ] {
        let (id, _, _) = api
            .create_endpoint(json!({"name": name, "url": url, "event_types": ["*"]}))
            .await;
        eps.push(id);
    }
    api.post_event(json!({"type": "job.completed", "id": "e1", "data": {}}))
        .await;
    wait_fanned_out(api, 1).await;
    for ep in &eps {
        wait_endpoint_settled(api, ep).await;
    }
    // ok: 1 attempt; flaky: 503, 503, 200; gone: 404 x3; slow: timeout x3; closed: refused x3.
    let m = wait_attempts(api, 13).await;
    assert_eq!(
        outcomes(&m),
        [
            ("success", 2),
            ("http_4xx", 3),
            ("http_5xx", 2),
            ("http_other", 0),
            ("timeout", 3),
            ("connect_error", 3),
            ("tls_error", 0),
            ("dns_error", 0),
            ("io_error", 0),
            ("not_sent", 0),
        ],
        "{m:?}"
    );
    // Every attempt sent a request, so every one is timed.
    assert_eq!(histogram_count(&m, LATENCY, &LATENCY_LES), 13, "{m:?}");
    // The three timeouts took at least the 2 s timeout each.
    assert!(
        13 - bucket(&m, LATENCY, "1") >= 3,
        "fewer than 3 attempts over 1 s: {m:?}"
    );
    assert!(m.get_f64(&format!("{LATENCY}_sum")) >= 6.0, "{m:?}");
    // Two deliveries delivered; flaky's waited out 200 ms + 400 ms of retries.
    assert_eq!(histogram_count(&m, LAG, &LAG_LES), 2, "{m:?}");
    assert!(bucket(&m, LAG, "0.5") <= 1, "{m:?}");
    assert!(m.get_f64(&format!("{LAG}_sum")) >= 0.6, "{m:?}");
    assert_eq!(m.get("hookd_deliveries_created_total"), 5);
    assert_eq!(m.get("hookd_deliveries_succeeded_total"), 2);
    assert_eq!(m.get("hookd_deliveries_dead_lettered_total"), 3);
    assert_eq!(m.get(PENDING), 0, "{m:?}");
    let text = d.api.without_key().get("/metrics").await.text;
    assert!(
        !text.contains("endpoint="),
        "per-endpoint series without [metrics] per_endpoint:\n{text}"
    );

    // A manual retry puts a dead-lettered delivery back among the pending; now it delivers.
    rx.script("/gone", Reply::Status(204));
    let ds = api.wait_event_deliveries("e1", 5, PATIENCE).await;
    let gone = ds
        .iter()
        .find(|d| d["endpoint_id"] == eps[2].as_str())
        .unwrap_or_else(|| panic!("no delivery to gone: {ds:?}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(&format!("/v1/deliveries/{gone}/retry"), &json!({}))
        .await
        .expect(202);
    api.wait_delivery_status(&gone, "delivered", PATIENCE).await;
    let m = wait_attempts(api, 14).await;
    let counted = outcomes(&m);
    assert_eq!(counted[0], ("success", 3), "{m:?}");
    assert_eq!(counted.iter().map(|(_, n)| n).sum::<u64>(), 14, "{m:?}");
    assert_eq!(histogram_count(&m, LATENCY, &LATENCY_LES), 14, "{m:?}");
    assert_eq!(histogram_count(&m, LAG, &LAG_LES), 3, "{m:?}");
    assert_eq!(m.get(PENDING), 0, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_deliveries_are_counted_again_after_a_restart() {
    // One failure puts a delivery a minute away: within the horizon, loaded by the shards.
    pending_counted_after_restart("60s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_retries_beyond_the_horizon_are_counted_after_a_restart() {
    // An hour away: beyond the 10-minute horizon, left on disk and counted from the stats.
    pending_counted_after_restart("1h").await;
}

/// Three deliveries each waiting `retry` for their second attempt, counted before and after a
/// restart; one more made afterwards adds to them. The retry stays pending for the whole test.
async fn pending_counted_after_restart(retry: &str) {
    let (dir, rx, mut d) = setup(|c| c.set("retry", "schedule", &format!("[\"{retry}\"]"))).await;
    rx.script("/down", Reply::Status(500));
    d.api
        .create_endpoint(json!({"name": "down", "url": rx.url("/down"), "event_types": ["*"]}))
        .await;
    for i in 0..3 {
        d.api
            .post_event(json!({"type": "job.completed", "id": format!("p{i}"), "data": {}}))
            .await;
    }
    wait_fanned_out(&d.api, 3).await;
    let m = wait_attempts(&d.api, 3).await;
    assert_eq!(m.get(PENDING), 3, "{m:?}");
    assert_eq!(m.get(&format!("{OUTCOMES}{{outcome=\"http_5xx\"}}")), 3);
    assert_eq!(histogram_count(&m, LAG, &LAG_LES), 0, "{m:?}");

    d.proc.sigterm();
    let st = d.proc.expect_exit(PATIENCE).await;
    assert_eq!(st.code(), Some(0), "{}", d.proc.dump_logs());
    drop(d);
    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    // Counted from the recovered deadlines before any attempt (the next is a minute away).
    let m = metrics(&d.api).await;
    assert_eq!(m.get(PENDING), 3, "{m:?}");
    assert_eq!(m.get("hookd_attempts_total"), 0, "{m:?}");

    // New deliveries add to them.
    d.api
        .post_event(json!({"type": "job.completed", "id": "p3", "data": {}}))
        .await;
    wait_fanned_out(&d.api, 1).await;
    let m = wait_attempts(&d.api, 1).await;
    assert_eq!(m.get(PENDING), 4, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_endpoint_outcomes_when_configured() {
    let (_dir, rx, d) = setup(|c| c.set("metrics", "per_endpoint", "true")).await;
    let api = &d.api;
    rx.script("/teapot", Reply::Status(418));
    let (ok, _, _) = api
        .create_endpoint(json!({"name": "ok", "url": rx.url("/ok"), "event_types": ["*"]}))
        .await;
    let (teapot, _, _) = api
        .create_endpoint(json!({"name": "teapot", "url": rx.url("/teapot"), "event_types": ["*"]}))
        .await;
    api.post_event(json!({"type": "job.completed", "data": {}}))
        .await;
    wait_endpoint_settled(api, &ok).await;
    wait_endpoint_settled(api, &teapot).await;
    // ok: one success; teapot: 418 on the first try and both retries.
    let m = wait_attempts(api, 4).await;
    let series = |ep: &str, o: &str| {
        m.get(&format!(
            "hookd_endpoint_attempt_outcomes_total{{endpoint=\"{ep}\",outcome=\"{o}\"}}"
        ))
    };
    assert_eq!(series(&ok, "success"), 1, "{m:?}");
    assert_eq!(series(&ok, "http_4xx"), 0, "{m:?}");
    assert_eq!(series(&teapot, "http_4xx"), 3, "{m:?}");
    assert_eq!(series(&teapot, "success"), 0, "{m:?}");
    assert_eq!(m.get(&format!("{OUTCOMES}{{outcome=\"http_4xx\"}}")), 3);
}
