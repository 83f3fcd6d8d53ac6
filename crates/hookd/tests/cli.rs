//! `hookd endpoints|events|deliveries ...` as an operator uses it: the built binary run as a
//! client of a real daemon delivering to a real receiver, its text and `--json` output, and its
//! exit codes (2 usage, 3 API error, 4 connection error).

mod common;

use std::net::TcpListener;

use common::tls::{tls_config, wait_listening, TestCa};
use common::*;
use serde_json::{json, Value};

const USAGE: i32 = 2;
const API_ERROR: i32 = 3;
const CONNECTION: i32 = 4;

/// The id of every row of a table on stdout whose cells include all of `cells`.
fn rows_with<'a>(out: &'a str, cells: &[&str]) -> Vec<&'a str> {
    out.lines()
        .filter(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            cells.iter().all(|c| words.contains(c))
        })
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// `hookd endpoints create --name NAME --target TARGET <more>`.
async fn create(cli: &Cli, name: &str, target: &str, more: &[&str]) -> Run {
    let mut args = vec!["endpoints", "create", "--name", name, "--target", target];
    args.extend_from_slice(more);
    cli.run(&args).await
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_an_endpoint_send_an_event_and_read_its_delivery() {
    let (_dir, rx, d) = setup(|c| c).await;
    let cli = d.cli();

    let run = create(
        &cli,
        "jobs",
        &rx.url("/hook"),
        &[
            "--event-type",
            "job.*",
            "--tenant",
            "acme",
            "--metadata",
            "team=gpu",
        ],
    )
    .await;
    run.ok();
    let ep = run.field("id");
    let secret = run.field("secret");
    assert!(secret.starts_with("whsec_"), "{run}");
    assert!(run.stdout.contains("shown this once"), "{run}");
    let stored = d.api.get(&format!("/v1/endpoints/{ep}")).await;
    let stored = stored.expect(200);
    assert_eq!(stored["name"], "jobs");
    assert_eq!(stored["tenant"], "acme");
    assert_eq!(stored["event_types"], json!(["job.*"]));
    assert_eq!(stored["metadata"], json!({"team": "gpu"}));

    // The data goes out byte for byte (`1.10` stays `1.10`, the key order stays).
    let data = r#"{"z_job":"job-42","n":1.10}"#;
    let send = [
        "events",
        "send",
        "--type",
        "job.completed",
        "--tenant",
        "acme",
        "--data",
        data,
        "--idempotency-key",
        "job-42-done",
    ];
    let run = cli.run(&send).await;
    run.ok();
    let event = run.field("id");
    assert_eq!(run.field("type"), "job.completed");
    assert!(!run.stdout.contains("replayed"), "{run}");
    // The same key again: the original event, said to be a replay.
    let run = cli.run(&send).await;
    run.ok();
    assert_eq!(run.field("id"), event);
    assert!(run.field("replayed").starts_with("yes"), "{run}");
    let got = rx.wait_for_path("/hook", 1, PATIENCE).await;
    assert!(got[0].body_str().contains(data), "{}", got[0].body_str());
    assert_signed(&got[0], &secret);
    let deliveries = d.api.wait_event_deliveries(&event, 1, PATIENCE).await;
    let dlv = id_of(&deliveries[0]);
    d.api
        .wait_delivery_status(&dlv, "delivered", PATIENCE)
        .await;

    let run = cli.run(&["events", "get", &event]).await;
    assert_eq!(
        rows_with(run.ok(), &["delivered", &ep]),
        [dlv.as_str()],
        "{run}"
    );
    assert!(run.stdout.contains("\"z_job\": \"job-42\""), "{run}");

    let run = cli.run(&["deliveries", "list", &ep]).await;
    assert!(run.ok().starts_with("ID "), "{run}");
    assert_eq!(
        rows_with(&run.stdout, &["delivered", "job.completed"]),
        [dlv.as_str()],
        "{run}"
    );

    // The attempt: the request exactly as sent, and the response.
    let run = cli.run(&["deliveries", "get", &dlv]).await;
    let out = run.ok();
    assert_eq!(run.field("status"), "delivered");
    assert_eq!(run.field("event"), event);
    assert!(out.contains("attempt 1 at "), "{run}");
    assert!(out.contains(": HTTP 204, "), "{run}");
    assert!(out.contains(&format!("POST {}", rx.url("/hook"))), "{run}");
    let sig = got[0].header("webhook-signature").unwrap();
    assert!(out.contains(&format!("webhook-signature: {sig}")), "{run}");
    assert!(out.contains(&format!("    {}", got[0].body_str())), "{run}");
    assert!(
        !out.contains(&secret),
        "the secret is never shown again\n{run}"
    );

    let run = cli.run(&["endpoints", "list"]).await;
    assert_eq!(
        rows_with(run.ok(), &["jobs", "acme", "yes"]),
        [ep.as_str()],
        "{run}"
    );
    let run = cli.run(&["endpoints", "get", &ep]).await;
    run.ok();
    assert_eq!(run.field("delivered"), "1");
    assert_eq!(run.field("metadata"), "team=gpu");
    assert!(!run.stdout.contains(&secret), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_shows_its_request_and_response_and_is_retried() {
    let (_dir, rx, d) = setup(|c| c).await;
    let cli = d.cli();
    rx.script(
        "/flaky",
        Answer::status(500).body("disk full on the receiver").into(),
    );
    let run = create(&cli, "flaky", &rx.url("/flaky"), &["-t", "*"]).await;
    run.ok();
    let ep = run.field("id");
    // The event's data from stdin.
    let run = cli
        .run_with_stdin(
            &["events", "send", "-t", "job.failed", "--data", "@-"],
            r#"{"job_id":"job-7"}"#,
        )
        .await;
    run.ok();
    let event = run.field("id");
    let deliveries = d.api.wait_event_deliveries(&event, 1, PATIENCE).await;
    let dlv = id_of(&deliveries[0]);
    // The harness's retry schedule has two retries: three attempts, then dead-lettered.
    d.api
        .wait_delivery_status(&dlv, "dead_lettered", PATIENCE)
        .await;

    let run = cli
        .run(&["deliveries", "list", &ep, "--status", "failed"])
        .await;
    assert_eq!(
        rows_with(run.ok(), &["dead_lettered", "3", "500"]),
        [dlv.as_str()],
        "{run}"
    );
    let run = cli
        .run(&["deliveries", "list", &ep, "--status", "delivered"])
        .await;
    assert!(run.ok().contains("(none)"), "{run}");
    let run = cli
        .run(&[
            "deliveries",
            "list",
            &ep,
            "--from",
            "1h",
            "--to",
            "2099-01-01T00:00:00.000Z",
        ])
        .await;
    assert_eq!(
        rows_with(run.ok(), &["dead_lettered"]),
        [dlv.as_str()],
        "{run}"
    );
    let run = cli.run(&["deliveries", "list", &ep, "--to", "1h"]).await;
    assert!(run.ok().contains("(none)"), "{run}");

    let run = cli.run(&["deliveries", "get", &dlv]).await;
    let out = run.ok();
    assert_eq!(run.field("attempts"), "3");
    for n in 1..=3 {
        assert!(out.contains(&format!("attempt {n} at ")), "{run}");
    }
    assert_eq!(out.matches(": HTTP 500, ").count(), 3, "{run}");
    assert_eq!(out.matches("disk full on the receiver").count(), 3, "{run}");
    assert!(out.contains("error   http_status"), "{run}");
    assert!(out.contains("webhook-signature: v1,"), "{run}");
    assert!(out.contains("\"job_id\":\"job-7\""), "{run}");

    // Fixed on the receiver's side: retry by hand.
    rx.script("/flaky", Reply::Status(204));
    let run = cli.run(&["deliveries", "retry", &dlv]).await;
    assert!(run.ok().starts_with("retry scheduled now\n"), "{run}");
    assert_eq!(run.field("id"), dlv);
    d.api
        .wait_delivery_status(&dlv, "delivered", PATIENCE)
        .await;
    assert_eq!(rx.requests_to("/flaky").len(), 4);
    let run = cli.run(&["deliveries", "get", &dlv]).await;
    assert!(run.ok().contains("attempt 4 at "), "{run}");
    assert!(run.stdout.contains(": HTTP 204, "), "{run}");

    // A delivered delivery cannot be retried: the API's 409, exit 3.
    let run = cli.run(&["deliveries", "retry", &dlv]).await;
    let err = run.fails(API_ERROR);
    assert!(err.contains("CONFLICT (HTTP 409)"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_the_apis_own_answer() {
    let (_dir, rx, d) = setup(|c| c).await;
    let cli = d.cli();
    let created = create(
        &cli,
        "scripted",
        &rx.url("/hook"),
        &[
            "--json",
            "-t",
            "instance.*",
            "--fields",
            r#"{"retry_schedule": [60, 600], "description": "from --fields"}"#,
            "--description",
            "from the flag",
        ],
    )
    .await
    .json();
    let ep = id_of(&created);
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["format"]["retry_schedule"], json!([60, 600]));
    assert_eq!(created["description"], "from the flag");

    let got = cli.run(&["endpoints", "get", &ep, "--json"]).await.json();
    assert_eq!(
        got,
        *d.api.get(&format!("/v1/endpoints/{ep}")).await.expect(200)
    );
    let list = cli.run(&["endpoints", "list", "--json"]).await.json();
    assert_eq!(list, *d.api.get("/v1/endpoints").await.expect(200));
    assert_eq!(list["data"][0]["id"], ep);

    let mut events = Vec::new();
    for n in 0..2 {
        let ev = cli
            .run(&[
                "events",
                "send",
                "--json",
                "-t",
                "instance.ready",
                "--data",
                &format!(r#"{{"n":{n}}}"#),
            ])
            .await
            .json();
        assert_eq!(ev["data"], json!({ "n": n }));
        events.push(id_of(&ev));
    }
    let mut deliveries = Vec::new();
    for ev in &events {
        let ds = d.api.wait_event_deliveries(ev, 1, PATIENCE).await;
        let dlv = id_of(&ds[0]);
        d.api
            .wait_delivery_status(&dlv, "delivered", PATIENCE)
            .await;
        deliveries.push(dlv);
    }
    let got = cli
        .run(&["events", "get", &events[0], "--json"])
        .await
        .json();
    assert_eq!(got, d.api.event(&events[0]).await);
    let got = cli
        .run(&["deliveries", "get", &deliveries[0], "--json"])
        .await
        .json();
    assert_eq!(got, d.api.delivery(&deliveries[0]).await);
    assert_eq!(got["attempts"][0]["request"]["method"], "POST");

    // Pages: one at a time, the cursor passed on as given.
    let first = cli
        .run(&["deliveries", "list", &ep, "--json", "--limit", "1"])
        .await
        .json();
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = cli
        .run(&[
            "deliveries",
            "list",
            &ep,
            "--json",
            "--limit",
            "1",
            "--cursor",
            &cursor,
        ])
        .await
        .json();
    let mut seen = vec![id_of(&first["data"][0]), id_of(&second["data"][0])];
    seen.sort();
    deliveries.sort();
    assert_eq!(seen, deliveries);
    // The text form names the flag that fetches the next page.
    let run = cli.run(&["deliveries", "list", &ep, "--limit", "1"]).await;
    assert!(
        run.ok().contains(&format!("next page: --cursor {cursor}")),
        "{run}"
    );

    // A 204 has no JSON to print: nothing, exit 0.
    let run = cli.run(&["endpoints", "delete", &ep, "--json"]).await;
    assert_eq!(run.ok(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_rotate_test_and_delete_an_endpoint() {
    let (_dir, rx, d) = setup(|c| c).await;
    let cli = d.cli();
    let run = create(&cli, "ops", &rx.url("/ops"), &["-t", "*"]).await;
    run.ok();
    let ep = run.field("id");
    let first_secret = run.field("secret");

    let run = cli
        .run(&[
            "endpoints",
            "update",
            &ep,
            "--disable",
            "--name",
            "ops-2",
            "--header",
            "X-Team=gpu",
        ])
        .await;
    run.ok();
    assert_eq!(run.field("enabled"), "no");
    assert_eq!(run.field("name"), "ops-2");
    assert_eq!(run.field("static headers"), "X-Team=gpu");
    let stored = d.api.get(&format!("/v1/endpoints/{ep}")).await;
    assert_eq!(stored.expect(200)["enabled"], false);
    let run = cli.run(&["endpoints", "update", &ep]).await;
    assert!(run.fails(USAGE).contains("nothing to change"), "{run}");
    let run = cli.run(&["endpoints", "update", &ep, "--enable"]).await;
    run.ok();
    assert_eq!(run.field("enabled"), "yes");

    let run = cli
        .run(&["endpoints", "rotate", &ep, "--overlap", "0s"])
        .await;
    run.ok();
    let secret = run.field("secret");
    assert!(
        secret.starts_with("whsec_") && secret != first_secret,
        "{run}"
    );
    assert!(run.stdout.contains("shown this once"), "{run}");

    // The test event is signed with the new secret only (no overlap asked for).
    let run = cli
        .run(&["endpoints", "test", &ep, "--type", "gpu.available"])
        .await;
    run.ok();
    assert_eq!(run.field("delivered"), "yes");
    assert_eq!(run.field("status"), "204");
    let got = rx.wait_for_path("/ops", 1, PATIENCE).await;
    assert_signed(&got[0], &secret);
    assert!(!signature_matches(&got[0], &first_secret));
    assert_eq!(got[0].header("x-team"), Some("gpu"));

    let run = cli.run(&["endpoints", "delete", &ep]).await;
    assert_eq!(run.ok(), format!("deleted endpoint {ep}\n"));
    let run = cli.run(&["endpoints", "get", &ep]).await;
    assert!(
        run.fails(API_ERROR).contains("NOT_FOUND (HTTP 404)"),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_print_the_apis_code_and_message_and_exit_3() {
    let (_dir, _rx, d) = setup(|c| c).await;
    let cli = d.cli();
    let cases: Vec<(Vec<&str>, u16, &str)> = vec![
        (
            vec!["endpoints", "get", "ep_nope"],
            404,
            "/v1/endpoints/ep_nope",
        ),
        (
            vec!["deliveries", "get", "dlv_nope"],
            404,
            "/v1/deliveries/dlv_nope",
        ),
        (
            vec!["events", "get", "evt_nope"],
            404,
            "/v1/events/evt_nope",
        ),
    ];
    for (args, status, path) in cases {
        let run = cli.run(&args).await;
        let err = run.fails(API_ERROR);
        let api = d.api.get(path).await;
        api.expect_error(status, "NOT_FOUND");
        let message = api.body["error"]["message"].as_str().unwrap();
        assert_eq!(
            err,
            format!("hookd: API error NOT_FOUND (HTTP {status}): {message}\n"),
            "{run}"
        );
    }

    let run = create(&cli, "x", "ftp://example.com/", &["-t", "*"]).await;
    assert!(
        run.fails(API_ERROR).contains("VALIDATION_ERROR (HTTP 400)"),
        "{run}"
    );
    let run = cli.run(&["events", "send", "-t", "no.such.type"]).await;
    let err = run.fails(API_ERROR);
    assert!(
        err.contains("VALIDATION_ERROR (HTTP 400)") && err.contains("type"),
        "{run}"
    );

    // A wrong key: the API's 401, and the key is not repeated anywhere.
    let wrong = "wrong-key-that-must-not-be-printed";
    let run = cli.with_key(wrong).run(&["endpoints", "list"]).await;
    assert!(
        run.fails(API_ERROR).contains("UNAUTHORIZED (HTTP 401)"),
        "{run}"
    );
    assert!(!run.stderr.contains(wrong), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_connection_errors_have_their_own_exit_codes() {
    // A port nothing listens on: bound, then let go.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let key = "key-never-printed-0123456789";
    let cli = Cli::new(&format!("http://{closed}"), Some(key));
    let run = cli.run(&["endpoints", "list"]).await;
    let err = run.fails(CONNECTION);
    assert!(
        err.contains(&format!("GET http://{closed}/v1/endpoints")),
        "{run}"
    );
    assert!(err.contains("Connection refused"), "{run}");
    assert!(!err.contains(key), "{run}");

    // Something answers, but not as hookd's API: 200 with a page that is not JSON.
    let rx = Receiver::start().await;
    rx.script(
        "/v1/endpoints",
        Answer::status(200).body("<html>hello</html>").into(),
    );
    let run = Cli::new(&rx.url(""), Some(key))
        .run(&["endpoints", "list"])
        .await;
    assert!(run.fails(CONNECTION).contains("is not JSON"), "{run}");
    // Or does not answer in time.
    rx.script("/v1/deliveries/dlv_1", Reply::Hang);
    let run = Cli::new(&rx.url(""), Some(key))
        .run(&["deliveries", "get", "dlv_1", "--timeout", "300ms"])
        .await;
    assert!(
        run.fails(CONNECTION).contains("no answer within 300ms"),
        "{run}"
    );

    let usage: &[(&[&str], Cli, &str)] = &[
        (
            &["endpoints", "list"],
            Cli::new("http://127.0.0.1:9", None),
            "no API key",
        ),
        (
            &["endpoints", "list"],
            Cli::new("127.0.0.1:8080", Some(key)),
            "--url",
        ),
        (
            &["endpoints", "list"],
            Cli::new("ftp://127.0.0.1", Some(key)),
            "http or https",
        ),
        (
            &["endpoints", "frobnicate"],
            cli.clone(),
            "unrecognized subcommand",
        ),
        (
            &["endpoints", "create", "--name", "x"],
            cli.clone(),
            "required",
        ),
        (
            &["deliveries", "list", "ep_1", "--status", "lost"],
            cli.clone(),
            "invalid value",
        ),
        (
            &["events", "send", "-t", "job.failed", "--data", "{nope"],
            cli.clone(),
            "not JSON",
        ),
        (
            &["endpoints", "list", "--ca-file", "/no/such/ca.pem"],
            cli.clone(),
            "--ca-file",
        ),
        (
            &["endpoints", "list", "--config", "hookd.toml"],
            cli.clone(),
            "--config",
        ),
    ];
    for (args, client, what) in usage {
        let run = client.run(args).await;
        assert!(run.fails(USAGE).contains(what), "expected {what:?}\n{run}");
    }
    // The key is never shown by --help (clap would print an environment variable's value).
    let run = cli.run(&["endpoints", "list", "--help"]).await;
    assert!(run.ok().contains("HOOKD_API_KEY"), "{run}");
    assert!(!run.stdout.contains(key), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca_given_by_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let cert = ca.issue(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let path = tls_config(dir.path(), &cert);
    let mut proc = Proc::spawn(&path, &[]);
    let addr = wait_listening(&mut proc, "https").await;
    let cli = Cli::new(&format!("https://{addr}"), Some(ADMIN_KEY));

    let ca_arg = ca_file.to_string_lossy().into_owned();
    let run = cli.run(&["endpoints", "list", "--ca-file", &ca_arg]).await;
    assert!(run.ok().starts_with("ID "), "{run}");
    // The same daemon without its CA: the certificate is not trusted, a connection error.
    let run = cli.run(&["endpoints", "list"]).await;
    assert!(run.fails(CONNECTION).contains("certificate"), "{run}");
}
