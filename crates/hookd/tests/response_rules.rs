//! What an endpoint's answer asks of its next attempt: `Retry-After` on 429 and 503 (clamped to
//! [1 s, 1 h]), `410 Gone` disables the endpoint, and redirects are failures, never followed.
//! An endpoint failing for `auto_disable_after` is disabled too; both are announced with the
//! operational event `endpoint.disabled`.

mod common;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

fn schedule(c: Config) -> Config {
    // Five quick retries: the schedule's 200 ms is what a Retry-After replaces.
    c.set(
        "retry",
        "schedule",
        r#"["200ms","200ms","200ms","200ms","200ms"]"#,
    )
}

/// Creates an endpoint per path, all subscribed to `job.failed`, posts one event and returns
/// each path's delivery id.
async fn one_event_to(api: &Api, rx: &Receiver, paths: &[&str]) -> BTreeMap<String, String> {
    let mut by_endpoint = BTreeMap::new();
    for path in paths {
        let body = json!({"name": path, "url": rx.url(path), "event_types": ["job.failed"]});
        let (id, _, _) = api.create_endpoint(body).await;
        by_endpoint.insert(id, path.to_string());
    }
    let ev = api
        .post_event(json!({"type": "job.failed", "data": {}}))
        .await;
    let ev_id = ev["id"].as_str().unwrap();
    let ds = api
        .wait_event_deliveries(ev_id, paths.len(), secs(30))
        .await;
    ds.iter()
        .map(|d| {
            let ep = d["endpoint_id"].as_str().unwrap();
            (
                by_endpoint[ep].clone(),
                d["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits until the delivery has an attempt and a next one scheduled; returns the last attempt's
/// time and the next one's (unix ms), read together.
async fn last_and_next(api: &Api, delivery: &str) -> (u64, u64) {
    let deadline = std::time::Instant::now() + secs(30);
    loop {
        let d = api.delivery(delivery).await;
        let attempts = d["attempts"].as_array().cloned().unwrap_or_default();
        if let (Some(last), "retrying") = (attempts.last(), d["status"].as_str().unwrap_or("")) {
            return (unix_ms(&last["at"]), unix_ms(&d["next_attempt_at"]));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no retry scheduled: {d}"
        );
        tokio::time::sleep(millis(20)).await;
    }
}

fn answer(status: u16, retry_after: &str) -> Answer {
    Answer::status(status).header("retry-after", retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_on_429_and_503_sets_the_next_attempt_within_bounds() {
    let (_dir, rx, d) = setup(schedule).await;
    let api = &d.api;
    // An HTTP date a minute ahead, whole seconds as the format has them.
    let at = SystemTime::now() + secs(60);
    let date = httpdate::fmt_http_date(at);
    let date_ms = httpdate::parse_http_date(&date)
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    rx.script(
        "/seconds",
        Reply::Sequence(vec![answer(429, "3").into(), Reply::Status(204)]),
    );
    rx.script("/date", answer(503, &date).into());
    rx.script("/zero", answer(429, "0").into());
    rx.script("/day", answer(503, "86400").into());
    rx.script(
        "/not-asked",
        Reply::Sequence(vec![answer(500, "3600").into(), Reply::Status(204)]),
    );
    let paths = ["/seconds", "/date", "/zero", "/day", "/not-asked"];
    let dlv = one_event_to(api, &rx, &paths).await;

    // Delta seconds: the second attempt came no sooner than asked, and was delivered.
    let done = api
        .wait_delivery_status(&dlv["/seconds"], "delivered", secs(30))
        .await;
    let at: Vec<u64> = attempts_at(&done);
    assert_eq!(at.len(), 2, "{done}");
    assert!(at[1] - at[0] >= 3000, "retried {} ms later", at[1] - at[0]);

    // An HTTP date: the next attempt is at that date.
    let (_, next) = last_and_next(api, &dlv["/date"]).await;
    assert!(next + 5 >= date_ms, "next {next}, asked for {date_ms}");
    // 0 s is raised to 1 s; a day is cut to an hour.
    let (last, next) = last_and_next(api, &dlv["/zero"]).await;
    assert!(next - last >= 1000, "{} ms", next - last);
    let (last, next) = last_and_next(api, &dlv["/day"]).await;
    assert!(next - last >= 3_600_000, "{} ms", next - last);
    assert!(next - last < 7_200_000, "{} ms: not clamped", next - last);

    // A 500's Retry-After is not one to honour: the schedule's 200 ms applied, not an hour.
    let done = api
        .wait_delivery_status(&dlv["/not-asked"], "delivered", secs(30))
        .await;
    assert_eq!(attempts_at(&done).len(), 2, "{done}");
}

fn attempts_at(delivery: &Value) -> Vec<u64> {
    let attempts = delivery["attempts"].as_array().expect("attempts");
    attempts.iter().map(|a| unix_ms(&a["at"])).collect()
}

/// `410 Gone` disables the endpoint before its slot is free: with one request at a time, its
/// other queued deliveries are never sent and are dead-lettered as sent to a disabled endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gone_disables_the_endpoint_and_stops_its_deliveries() {
    let (_dir, rx, d) = setup(|c| schedule(c).set("sender", "per_endpoint_concurrency", "1")).await;
    let api = &d.api;
    watch_disabled(api, &rx).await;
    rx.script("/gone", Reply::Status(410));
    let body = json!({"name": "gone", "url": rx.url("/gone"), "event_types": ["job.failed"]});
    let (ep, _, _) = api.create_endpoint(body).await;
    // One batch: fan-out commits its five deliveries together, before any is attempted.
    let batch = Value::Array(vec![json!({"type": "job.failed", "data": {}}); 5]);
    let r = api.post("/v1/events/batch", &batch).await;
    let events: Vec<String> = r.expect(202)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let mut errors = Vec::new();
    for ev in &events {
        let ds = api.wait_event_deliveries(ev, 1, secs(30)).await;
        let id = ds[0]["id"].as_str().unwrap();
        let dv = api
            .wait_delivery_status(id, "dead_lettered", secs(30))
            .await;
        let attempts = dv["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "a gone endpoint is not retried: {dv}");
        errors.push((
            attempts[0]["status_code"].clone(),
            attempts[0]["error"].clone(),
        ));
    }
    // Exactly one was sent (every delivery is dead-lettered, so none is still to come).
    assert_eq!(rx.requests_to("/gone").len(), 1);
    assert!(
        errors.contains(&(json!(410), json!("http_status"))),
        "{errors:?}"
    );
    let disabled = (Value::Null, json!("endpoint_disabled"));
    assert_eq!(
        errors.iter().filter(|e| **e == disabled).count(),
        4,
        "{errors:?}"
    );
    let got = api.get(&format!("/v1/endpoints/{ep}")).await;
    assert_eq!(got.expect(200)["enabled"], false);
    let notice = disabled_notice(&rx).await;
    assert_eq!(notice["data"]["endpoint_id"], ep, "{notice}");
    assert_eq!(notice["data"]["reason"], "gone", "{notice}");
    assert_eq!(notice["data"]["failing_since"], Value::Null, "{notice}");
}

/// A redirect is a failed attempt, and its target is never requested.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redirects_fail_and_are_not_followed() {
    let (_dir, rx, d) = setup(schedule).await;
    let api = &d.api;
    let target = rx.url("/target");
    for (path, status) in [("/moved", 301), ("/found", 302), ("/temporary", 307)] {
        rx.script(
            path,
            Answer::status(status).header("location", &target).into(),
        );
    }
    let dlv = one_event_to(api, &rx, &["/moved", "/found", "/temporary"]).await;
    for (path, status) in [("/moved", 301), ("/found", 302), ("/temporary", 307)] {
        // The attempt is recorded once its exchange is over: a followed redirect would have
        // reached /target before.
        last_and_next(api, &dlv[path]).await;
        let dv = api.delivery(&dlv[path]).await;
        let first = &dv["attempts"][0];
        assert_eq!(first["status_code"], status, "{dv}");
        assert_eq!(first["error"], "http_status", "{dv}");
    }
    assert_eq!(rx.requests_to("/target").len(), 0);
}

/// Creates an endpoint subscribed to the operational event `endpoint.disabled`.
async fn watch_disabled(api: &Api, rx: &Receiver) {
    let body = json!({"name": "ops", "url": rx.url("/ops"), "event_types": ["endpoint.disabled"]});
    api.create_endpoint(body).await;
}

/// The `endpoint.disabled` event the ops endpoint received (the first), as JSON.
async fn disabled_notice(rx: &Receiver) -> Value {
    let got = rx.wait_for_path("/ops", 1, secs(30)).await;
    let v = got[0].json();
    assert_eq!(v["type"], "endpoint.disabled", "{v}");
    v
}

/// `retries` retries `every` apart, auto-disable after `after`, and no breaker in the way.
fn retrying_until_disabled(c: Config, every: &str, retries: usize, after: &str) -> Config {
    let delay = format!("\"{every}\"");
    c.set(
        "retry",
        "schedule",
        &format!("[{}]", vec![delay; retries].join(",")),
    )
    .set("sender", "auto_disable_after", &format!("\"{after}\""))
    .set("sender", "breaker_failures", "100")
}

/// An endpoint whose every attempt has failed for `auto_disable_after` is disabled, and the
/// tenant's endpoints subscribed to `endpoint.disabled` hear of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_failing_too_long_is_disabled_and_announced() {
    // Retries every 200 ms for 4 s: some are left when it is disabled after 1 s.
    let (_dir, rx, d) = setup(|c| retrying_until_disabled(c, "200ms", 20, "1s")).await;
    let api = &d.api;
    watch_disabled(api, &rx).await;
    rx.script("/down", Reply::Status(500));
    let dlv = one_event_to(api, &rx, &["/down"]).await;
    let ep = api.delivery(&dlv["/down"]).await["endpoint_id"].clone();

    let notice = disabled_notice(&rx).await;
    let data = &notice["data"];
    assert_eq!(data["endpoint_id"], ep, "{notice}");
    assert_eq!(data["reason"], "failing", "{notice}");
    assert_eq!(data["url"], rx.url("/down"), "{notice}");
    let failing_for = unix_ms(&notice["created_at"]) - unix_ms(&data["failing_since"]);
    assert!(
        failing_for >= 1000,
        "disabled after failing {failing_for} ms"
    );
    let got = api
        .get(&format!("/v1/endpoints/{}", ep.as_str().unwrap()))
        .await;
    assert_eq!(got.expect(200)["enabled"], false);
    // Its delivery's next attempt finds it disabled and gives up.
    let dv = api
        .wait_delivery_status(&dlv["/down"], "dead_lettered", secs(30))
        .await;
    let attempts = dv["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.last().unwrap()["error"],
        "endpoint_disabled",
        "{dv}"
    );
}

/// A `Retry-After` speaks for the endpoint, not only for one delivery: its other deliveries
/// wait as long before their first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_holds_the_endpoints_other_deliveries() {
    let (_dir, rx, d) = setup(|c| schedule(c).set("sender", "per_endpoint_concurrency", "1")).await;
    let api = &d.api;
    rx.script(
        "/busy",
        Reply::Sequence(vec![answer(429, "2").into(), Reply::Status(204)]),
    );
    let body = json!({"name": "busy", "url": rx.url("/busy"), "event_types": ["job.failed"]});
    let (ep, _, _) = api.create_endpoint(body).await;
    let batch = Value::Array(vec![json!({"type": "job.failed", "data": {}}); 5]);
    api.post("/v1/events/batch", &batch).await.expect(202);
    let path = format!("/v1/endpoints/{ep}");
    let deadline = std::time::Instant::now() + secs(30);
    while api.get(&path).await.expect(200)["stats"]["delivered"] != 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered in 30 s"
        );
        tokio::time::sleep(millis(50)).await;
    }
    let list = api.get(&format!("{path}/deliveries?limit=10")).await;
    let mut firsts = Vec::new();
    for dl in list.expect(200)["data"].as_array().unwrap() {
        let dv = api.delivery(dl["id"].as_str().unwrap()).await;
        firsts.push(attempts_at(&dv)[0]);
    }
    firsts.sort();
    // The 429 came first; every other delivery's first attempt waited the 2 s it asked for.
    assert!(firsts[1] - firsts[0] >= 2000, "{firsts:?}");
    assert_eq!(rx.requests_to("/busy").len(), 6);
}

/// Auto-disable counts from the streak's first failure even across a kill -9 and restart: the
/// streak is derived from the recorded attempts, not only held in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_streak_survives_a_restart() {
    let (dir, rx, mut d) = setup(|c| retrying_until_disabled(c, "300ms", 40, "3s")).await;
    watch_disabled(&d.api, &rx).await;
    rx.script("/down", Reply::Status(500));
    let dlv = one_event_to(&d.api, &rx, &["/down"]).await;
    let first = wait_for(
        || async {
            let dv = d.api.delivery(&dlv["/down"]).await;
            match dv["attempts"].as_array() {
                Some(a) if a.len() >= 2 => Ok(unix_ms(&a[0]["at"])),
                _ => Err(dv.to_string()),
            }
        },
        "two failed attempts",
        secs(30),
    )
    .await;

    let ep = d.api.delivery(&dlv["/down"]).await["endpoint_id"].clone();
    let path = format!("/v1/endpoints/{}", ep.as_str().unwrap());
    let shown = d.api.get(&path).await.expect(200)["stats"]["failing_since"].clone();
    assert_eq!(unix_ms(&shown), first, "{shown}");

    d.proc.kill9();
    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let notice = disabled_notice(&rx).await;
    let since = unix_ms(&notice["data"]["failing_since"]);
    assert!(
        since.abs_diff(first) <= 1,
        "failing since {since}, first failure at {first}: {notice}"
    );
    assert_eq!(notice["data"]["endpoint_id"], ep, "{notice}");
    let got = d.api.get(&path).await;
    assert_eq!(got.expect(200)["enabled"], false);
}
