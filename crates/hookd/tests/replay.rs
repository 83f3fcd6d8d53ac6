//! Replay: the events of a time range sent to an endpoint as new deliveries (a new endpoint
//! that wants yesterday's events), scoped to its tenant and its event types, durable across a
//! restart; bad ranges change nothing.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::crash::crash_config;
use common::keys::issue_key;
use common::*;
use serde_json::{json, Value};

/// Posts `event` and sleeps 5 ms, so the next event is made in a later millisecond.
async fn post(api: &Api, event: Value) -> Value {
    let ev = api.post_event(event).await;
    tokio::time::sleep(millis(5)).await;
    ev
}

fn ids(reqs: &[Recorded]) -> BTreeSet<String> {
    reqs.iter().map(|r| r.webhook_id().to_owned()).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_endpoint_gets_the_matching_events_of_its_tenant_in_the_range() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    // Before the range; in it: two of the endpoint's types, one it does not take, one of
    // another tenant; after it.
    post(
        api,
        json!({"type": "job.completed", "id": "before", "tenant": "acme", "data": {}}),
    )
    .await;
    let first = post(
        api,
        json!({"type": "job.completed", "id": "in-1", "tenant": "acme", "data": {"n": 1}}),
    )
    .await;
    post(
        api,
        json!({"type": "instance.ready", "id": "other-type", "tenant": "acme", "data": {}}),
    )
    .await;
    post(
        api,
        json!({"type": "job.completed", "id": "other-tenant", "tenant": "globex", "data": {}}),
    )
    .await;
    post(
        api,
        json!({"type": "job.failed", "id": "in-2", "tenant": "acme", "data": {"n": 2}}),
    )
    .await;
    let after = post(
        api,
        json!({"type": "job.failed", "id": "after", "tenant": "acme", "data": {}}),
    )
    .await;
    // Indexed (no endpoint existed: nothing was delivered).
    wait_fanned_out(api, 6).await;

    let body =
        json!({"name": "late", "url": rx.url("/late"), "event_types": ["job.*"], "tenant": "acme"});
    let (ep, secret, _) = api.create_endpoint(body).await;
    let replay = format!("/v1/endpoints/{ep}/replay");
    let (since, until) = (first["created_at"].clone(), after["created_at"].clone());

    // Bad input: 400 naming the field, and nothing is made.
    let future = json!(unix_now() * 1000 + 3_600_000);
    for (bad, text) in [
        (json!({}), "`since` is required"),
        (json!({"since": "yesterday"}), "`since` must be RFC 3339"),
        (
            json!({"since": future}),
            "`since` must not be in the future",
        ),
        (
            json!({"since": until, "until": since}),
            "`until` must be later than `since`",
        ),
        (
            json!({"since": since, "until": since}),
            "`until` must be later than `since`",
        ),
        (
            json!({"since": since, "until": "tomorrow"}),
            "`until` must be RFC 3339",
        ),
        (json!({"since": since, "extra": 1}), "extra"),
    ] {
        let r = api.post(&replay, &bad).await;
        r.expect_error(400, "VALIDATION_ERROR");
        assert!(r.text.contains(text), "{bad}: {}", r.text);
    }
    let listed = api.get(&format!("/v1/endpoints/{ep}/deliveries")).await;
    assert_eq!(
        listed.expect(200)["data"],
        json!([]),
        "a refused replay made nothing"
    );
    api.post(
        "/v1/endpoints/ep_01JTQ8Z4X5C6V7B8N9M0K1J2H3/replay",
        &json!({"since": 0}),
    )
    .await
    .expect_error(404, "NOT_FOUND");

    // Another tenant's key can neither replay onto this endpoint nor reach these events.
    let globex = issue_key(
        api,
        "globex",
        &["deliveries:write", "endpoints:write"],
        json!({}),
    )
    .await;
    let globex = api.with_key(&globex.text);
    globex
        .post(&replay, &json!({"since": since}))
        .await
        .expect_error(404, "NOT_FOUND");
    let body = json!({"name": "g", "url": rx.url("/globex"), "event_types": ["*"]});
    let (gep, _, _) = globex.create_endpoint(body).await;
    let r = globex
        .post(&format!("/v1/endpoints/{gep}/replay"), &json!({"since": 0}))
        .await;
    assert_eq!(r.expect(202)["scheduled"], 1, "{}", r.text);

    let r = api
        .post(&replay, &json!({"since": since, "until": until}))
        .await;
    let v = r.expect(202);
    assert_eq!(v["scheduled"], 2, "{v}");
    assert_eq!((&v["since"], &v["until"]), (&since, &until));

    // Exactly the two, signed, with their events' ids and bodies.
    let settled = wait_endpoint_settled(api, &ep).await;
    assert_eq!(settled.len(), 2, "{settled:?}");
    let reqs = rx.requests_to("/late");
    assert_eq!(ids(&reqs), set(&["in-1", "in-2"]), "{}", describe(&reqs));
    assert_eq!(reqs.len(), 2, "{}", describe(&reqs));
    for req in &reqs {
        assert!(req.is_success());
        assert_signed(req, &secret);
        let body = req.json();
        assert_eq!(body["id"], req.webhook_id());
    }
    verify_with_python(&[(&secret, &reqs[0]), (&secret, &reqs[1])]);
    let one = reqs
        .iter()
        .find(|r| r.webhook_id() == "in-1")
        .unwrap()
        .json();
    assert_eq!(one["type"], "job.completed");
    assert_eq!(one["data"], json!({"n": 1}));
    assert_eq!(one["created_at"], since, "the event as it was made");
    let globex_reqs = rx.requests_to("/globex");
    assert_eq!(ids(&globex_reqs), set(&["other-tenant"]));

    // The event lists its new delivery; `until` left out means now: the later one too.
    let ev = api.event("in-1").await;
    let listed: Vec<_> = ev["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["endpoint_id"].clone())
        .collect();
    assert_eq!(listed, [json!(ep)], "{ev}");
    // The command line: a reversed range is the API's 400 (exit 3); no `--until`: until now.
    let cli = d.cli();
    let (since_s, until_s) = (since.as_str().unwrap(), until.as_str().unwrap());
    let args = [
        "endpoints",
        "replay",
        &ep,
        "--since",
        until_s,
        "--until",
        since_s,
    ];
    let err = cli.run(&args).await.fails(3).to_owned();
    assert!(
        err.contains("VALIDATION_ERROR") && err.contains("`until`"),
        "{err}"
    );
    // With `--idempotency-key`, a repeat makes nothing more and answers as the first did;
    // the same key for another range is the API's 409.
    let keyed = ["endpoints", "replay", &ep, "--since", until_s];
    let keyed = [&keyed[..], &["--idempotency-key", "cli-replay-1"]].concat();
    let run = cli.run(&keyed).await;
    run.ok();
    assert_eq!(run.field("scheduled"), "1", "{run}");
    assert_eq!(run.field("since"), until_s, "{run}");
    let again = cli.run(&keyed).await;
    again.ok();
    assert_eq!(
        (again.field("scheduled"), again.field("since")),
        ("1".to_owned(), until_s.to_owned()),
        "{again}"
    );
    let other = [
        &keyed[..3],
        &["--since", since_s, "--idempotency-key", "cli-replay-1"],
    ]
    .concat();
    let err = cli.run(&other).await.fails(3).to_owned();
    assert!(err.contains("CONFLICT"), "{err}");
    rx.wait_until("the later event replayed", PATIENCE, |r| {
        r.iter()
            .any(|x| x.path == "/late" && x.webhook_id() == "after")
    })
    .await;

    // A disabled endpoint is refused.
    api.patch(&format!("/v1/endpoints/{ep}"), &json!({"enabled": false}))
        .await
        .expect(200);
    api.post(&replay, &json!({"since": 0}))
        .await
        .expect_error(409, "CONFLICT");
}

/// A receiver path that holds every request far longer than the test lasts, so the replayed
/// deliveries are in flight (not delivered) when the daemon is killed.
const HOLD: &str = "/hold";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_deliveries_survive_a_restart() {
    // Killed before the read model was flushed: the restart applies the replay's record again.
    restart_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_deliveries_survive_a_restart_after_a_checkpoint() {
    // Killed after a checkpoint flushed the read model (the record counts as applied): the
    // restart makes the deliveries, still unattempted, fresh again from the outcome log.
    restart_case(true).await;
}

/// Checkpoint lines the daemon has logged so far (it logs them at debug level).
fn checkpoints(d: &Daemon) -> usize {
    let lines = d
        .proc
        .stdout_lines()
        .into_iter()
        .chain(d.proc.stderr_lines());
    lines
        .filter(|l| l.contains("checkpoint outcomes_through"))
        .count()
}

async fn restart_case(checkpointed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.script(
        HOLD,
        Reply::Slow {
            delay: secs(120),
            status: 200,
        },
    );
    let cfg = crash_config(dir.path())
        .set("sender", "timeout", "\"30s\"")
        .set("storage", "checkpoint_interval", "\"100ms\"");
    let path = cfg.write(dir.path());
    let mut d = Daemon::start_path(&path, &[("HOOKD_LOG", "info,hookd=debug")]).await;
    let want: Vec<String> = (0..5).map(|i| format!("old-{i}")).collect();
    for id in &want {
        d.api
            .post_event(json!({"type": "job.completed", "id": id, "data": {}}))
            .await;
    }
    wait_fanned_out(&d.api, 5).await;
    let body = json!({"name": "hold", "url": rx.url(HOLD), "event_types": ["*"]});
    let (ep, secret, _) = d.api.create_endpoint(body).await;
    let r = d
        .api
        .post(&format!("/v1/endpoints/{ep}/replay"), &json!({"since": 0}))
        .await;
    assert_eq!(r.expect(202)["scheduled"], 5, "{}", r.text);
    // Answered: the replay is on disk. Attempts are under way, none has an outcome.
    rx.wait_until("a replayed delivery in flight", PATIENCE, |r| {
        r.iter().any(|x| x.path == HOLD)
    })
    .await;
    if checkpointed {
        // One checkpoint may have begun before the answer: the second after it covers it.
        let seen = checkpoints(&d);
        wait_for(
            || async {
                let n = checkpoints(&d);
                if n >= seen + 2 {
                    Ok(())
                } else {
                    Err(format!("{n} checkpoints"))
                }
            },
            "two checkpoints after the replay",
            PATIENCE,
        )
        .await;
    }
    d.proc.kill9();
    drop(d);

    rx.script(HOLD, Reply::Status(204));
    let restarted = Instant::now();
    let d = Daemon::start_path(&dir.path().join("hookd.toml"), &[]).await;
    let reqs = rx
        .wait_until(
            "every replayed event delivered after the restart",
            PATIENCE,
            |r| {
                let got: BTreeSet<_> = r
                    .iter()
                    .filter(|x| x.at >= restarted && x.path == HOLD && x.is_success())
                    .map(|x| x.webhook_id().to_owned())
                    .collect();
                got.len() == want.len()
            },
        )
        .await;
    let after: Vec<_> = reqs
        .into_iter()
        .filter(|x| x.at >= restarted && x.path == HOLD)
        .collect();
    assert_eq!(
        ids(&after),
        want.iter().cloned().collect(),
        "{}",
        describe(&after)
    );
    for req in &after {
        assert_signed(req, &secret);
    }
    let settled = wait_endpoint_settled(&d.api, &ep).await;
    assert_eq!(settled.len(), 5, "replayed once, not again: {settled:?}");
}

/// With an `Idempotency-Key`, a replay is safe to retry: the same key and request make nothing
/// more and answer as the first did; the same key for another range is refused; a malformed key
/// is refused before anything is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyed_replay_is_made_once() {
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    let first = post(
        api,
        json!({"type": "job.completed", "id": "k-1", "data": {}}),
    )
    .await;
    let second = post(
        api,
        json!({"type": "job.completed", "id": "k-2", "data": {}}),
    )
    .await;
    wait_fanned_out(api, 2).await;
    let body = json!({"name": "late", "url": rx.url("/late"), "event_types": ["job.*"]});
    let (ep, _, _) = api.create_endpoint(body).await;
    let replay = format!("/v1/endpoints/{ep}/replay");
    let range = json!({"since": first["created_at"]}).to_string();

    for bad in ["", "has space", &"k".repeat(256)] {
        api.post_raw(&replay, &range, &[("idempotency-key", bad)])
            .await
            .expect_error(400, "VALIDATION_ERROR");
    }
    let once = api
        .post_raw(&replay, &range, &[("idempotency-key", "replay-1")])
        .await;
    let once = once.expect(202).clone();
    assert_eq!(once["scheduled"], 2, "{once}");
    rx.wait_for_path("/late", 2, PATIENCE).await;
    let again = api
        .post_raw(&replay, &range, &[("idempotency-key", "replay-1")])
        .await;
    assert_eq!(again.expect(202), &once);
    let other = json!({"since": first["created_at"], "until": second["created_at"]}).to_string();
    api.post_raw(&replay, &other, &[("idempotency-key", "replay-1")])
        .await
        .expect_error(409, "CONFLICT");
    // A sentinel: a new event (delivered by fan-out now that the endpoint exists) and a replay
    // of all three under a new key. Once those 4 have arrived, 6 in all means the repeat made
    // nothing (it would have made 2 more).
    post(
        api,
        json!({"type": "job.completed", "id": "k-3", "data": {}}),
    )
    .await;
    let last = json!({"since": first["created_at"]}).to_string();
    let r = api
        .post_raw(&replay, &last, &[("idempotency-key", "replay-2")])
        .await;
    assert_eq!(r.expect(202)["scheduled"], 3);
    rx.wait_for_path("/late", 6, PATIENCE).await;
    tokio::time::sleep(millis(300)).await;
    let got = rx.requests_to("/late");
    assert_eq!(got.len(), 6, "{:?}", ids(&got));
}
