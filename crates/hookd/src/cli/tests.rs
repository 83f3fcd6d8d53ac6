use serde_json::json;

use super::api::{api_error, base_url, query, seg};
use super::output::{block, cell, one_line, Fields, Table};
use super::*;

#[test]
fn tables_align_columns_and_say_when_empty() {
    let mut t = Table::new(&["ID", "NAME", "URL"]);
    t.row(vec!["ep_1".into(), "jobs".into(), "http://a/".into()]);
    t.row(vec!["ep_22".into(), "billing-x".into(), "-".into()]);
    assert_eq!(
        t.render(),
        "ID     NAME       URL\n\
         ep_1   jobs       http://a/\n\
         ep_22  billing-x  -\n"
    );
    assert_eq!(Table::new(&["ID", "NAME"]).render(), "ID  NAME\n(none)\n");
}

#[test]
fn fields_align_values() {
    let f = Fields::new()
        .text("id", "ep_1")
        .value("enabled", &json!(true))
        .value("description", &json!(null));
    assert_eq!(
        f.render(),
        "id           ep_1\nenabled      yes\ndescription  -\n"
    );
}

#[test]
fn cells_show_json_for_people() {
    assert_eq!(cell(&json!(null)), "-");
    assert_eq!(cell(&json!("x")), "x");
    assert_eq!(cell(&json!("")), "-");
    assert_eq!(cell(&json!(["a.*", "b"])), "a.*, b");
    assert_eq!(cell(&json!([])), "-");
    assert_eq!(cell(&json!(500)), "500");
    assert_eq!(cell(&json!({"a": 1})), r#"{"a":1}"#);
}

#[test]
fn untrusted_text_cannot_drive_the_terminal() {
    // An ANSI escape, a carriage return and a right-to-left override from a response body.
    let hostile = "ok\u{1b}[2J\rfake\u{202e}txt";
    let line = one_line(hostile);
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    assert_eq!(line, r"ok\u{1b}[2J\rfake\u{202e}txt");
    assert_eq!(one_line("a\nb"), r"a\nb");
    // Blocks keep their lines and tabs, indented, and still escape the rest.
    assert_eq!(block("a\n\tb\u{7}", 2), "  a\n  \tb\\u{7}\n");
    assert_eq!(block("", 4), "    (empty)\n");
}

#[test]
fn ids_are_one_encoded_path_segment() {
    assert_eq!(seg("ep_01J.x-y~z"), "ep_01J.x-y~z");
    assert_eq!(seg("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
}

#[test]
fn queries_hold_only_the_given_pairs_encoded() {
    assert_eq!(query(&[("a", None), ("b", None)]), "");
    assert_eq!(
        query(&[
            ("status", Some("failed".into())),
            ("from", Some("2026-05-08T17:01:30.123+02:00".into())),
            ("limit", None),
        ]),
        "?status=failed&from=2026-05-08T17%3A01%3A30.123%2B02%3A00"
    );
}

#[test]
fn base_urls_are_http_or_https_with_a_host() {
    assert_eq!(
        base_url("http://127.0.0.1:8080/").unwrap(),
        "http://127.0.0.1:8080"
    );
    assert_eq!(
        base_url("https://hooks.example.com/hookd").unwrap(),
        "https://hooks.example.com/hookd"
    );
    for bad in [
        "",
        "127.0.0.1:8080",
        "ftp://x",
        "http://h/?q=1",
        "not a url",
    ] {
        let e = base_url(bad).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_USAGE, "{bad:?}: {e}");
    }
}

#[test]
fn api_errors_carry_the_api_code_and_message() {
    let e = api_error(
        404,
        br#"{"error":{"code":"NOT_FOUND","message":"no endpoint ep_x"}}"#,
    );
    assert_eq!(e.exit_code(), EXIT_API);
    assert_eq!(e.to_string(), "NOT_FOUND (HTTP 404): no endpoint ep_x");
    // Not the API's shape (a proxy's page): the status stands in for the code.
    let e = api_error(502, b"<html>Bad gateway</html>\nmore");
    assert_eq!(
        e.to_string(),
        "HTTP_502 (HTTP 502): <html>Bad gateway</html>"
    );
    assert_eq!(
        api_error(503, b"").to_string(),
        "HTTP_503 (HTTP 503): (no body)"
    );
}

#[test]
fn exit_codes_are_distinct_per_kind() {
    let codes = [
        CliError::Usage(String::new()).exit_code(),
        CliError::Api {
            status: 400,
            code: String::new(),
            message: String::new(),
        }
        .exit_code(),
        CliError::Connection(String::new()).exit_code(),
    ];
    assert_eq!(codes, [2, 3, 4]);
}

#[test]
fn the_api_key_stays_out_of_debug_output() {
    let key: ApiKey = "hk_secret_value".parse().unwrap();
    assert_eq!(key.expose(), "hk_secret_value");
    assert!(!format!("{key:?}").contains("hk_secret"));
}

#[test]
fn time_filters_take_durations_ago() {
    use super::deliveries::time_arg;
    assert_eq!(time_arg("1715187690123").unwrap(), "1715187690123");
    assert_eq!(
        time_arg("2026-05-08T17:01:30.123Z").unwrap(),
        "2026-05-08T17:01:30.123Z"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let ago: u128 = time_arg("2h").unwrap().parse().unwrap();
    let two_hours = 2 * 3600 * 1000;
    assert!(
        ago <= now_ms - two_hours + 1000 && ago + 60_000 >= now_ms - two_hours,
        "{ago}"
    );
}

#[derive(Debug, clap::Parser)]
struct Hookd {
    #[command(subcommand)]
    command: Command,
}

fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    use clap::Parser;
    Hookd::try_parse_from(std::iter::once("hookd").chain(args.iter().copied())).map(|h| h.command)
}

#[test]
fn the_arguments_are_consistent() {
    use clap::CommandFactory;
    Hookd::command().debug_assert();
}

#[test]
fn the_daemons_url_and_an_endpoints_url_are_different_flags() {
    let cmd = parse(&[
        "endpoints",
        "create",
        "--url",
        "http://daemon:8080",
        "--name",
        "n",
        "--target",
        "https://receiver.example/hook",
        "-t",
        "*",
    ])
    .unwrap();
    let Command::Endpoints { conn, cmd } = cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!(conn.url, "http://daemon:8080");
    let dbg = format!("{cmd:?}");
    assert!(dbg.contains("https://receiver.example/hook"), "{dbg}");
}

/// The request body `hookd endpoints create|update ARGS` sends (the flags it shares).
fn endpoint_body(args: &[&str]) -> Result<serde_json::Value, clap::Error> {
    let Command::Endpoints { cmd, .. } = parse(args)? else {
        panic!("{args:?}")
    };
    let common = match cmd {
        super::endpoints::Cmd::Create(a) => a.common,
        super::endpoints::Cmd::Update(a) => a.common,
        other => panic!("{other:?}"),
    };
    Ok(serde_json::Value::Object(common.body()))
}

#[test]
fn delivery_controls_are_flags() {
    let create = [
        "endpoints",
        "create",
        "--name",
        "n",
        "--target",
        "https://r.example/h",
    ];
    let with = |extra: &[&'static str]| {
        let mut a = create.to_vec();
        a.extend(["-t", "*"]);
        a.extend(extra);
        a
    };
    let body = endpoint_body(&with(&["--rate-limit", "20", "--burst", "2", "--fifo"])).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"rate_limit": {"per_second": 20, "burst": 2}, "fifo": true})
    );
    // Zero and below go to the API, which names the field in its 400.
    let body = endpoint_body(&with(&["--rate-limit", "-1"])).unwrap();
    assert_eq!(body["rate_limit"]["per_second"], -1);
    assert!(
        endpoint_body(&with(&["--burst", "2"])).is_err(),
        "a burst needs a rate"
    );
    assert!(endpoint_body(&with(&["--fifo", "--no-fifo"])).is_err());
    let lift = [
        "endpoints",
        "update",
        "ep_1",
        "--no-rate-limit",
        "--no-fifo",
    ];
    assert_eq!(
        endpoint_body(&lift).unwrap(),
        serde_json::json!({"rate_limit": null, "fifo": false})
    );
    assert!(endpoint_body(&[
        "endpoints",
        "update",
        "ep_1",
        "--rate-limit",
        "5",
        "--no-rate-limit"
    ])
    .is_err());
}

#[test]
fn connection_flags_go_before_or_after_the_subcommand() {
    for args in [
        &["deliveries", "--json", "--api-key", "k", "get", "dlv_1"][..],
        &["deliveries", "get", "dlv_1", "--json", "--api-key", "k"][..],
    ] {
        let Command::Deliveries { conn, .. } = parse(args).unwrap() else {
            panic!("{args:?}")
        };
        assert!(conn.json, "{args:?}");
        assert_eq!(conn.api_key.unwrap().expose(), "k");
    }
}

#[test]
fn a_delivery_shows_each_attempts_request_and_response() {
    let d = json!({
        "id": "dlv_1", "event_id": "evt_1", "endpoint_id": "ep_1", "tenant": "acme",
        "event_type": "job.failed", "status": "retrying", "created_at": "t0",
        "updated_at": "t2", "next_attempt_at": "t3", "last_attempt_at": "t2",
        "last_status_code": 500,
        "attempts": [
            {"number": 1, "at": "t1", "status_code": null, "latency_ms": 3,
             "error": "connect", "error_detail": "connection refused", "response_body": "",
             "request": {"method": "POST", "url": "http://r/hook", "body": "{\"a\":1}",
                         "endpoint_updated_since": true,
                         "headers": [{"name": "webhook-id", "value": "evt_1"}]}},
            {"number": 2, "at": "t2", "status_code": 500, "latency_ms": 12,
             "error": "http_status", "error_detail": null,
             "response_body": "oops\n\u{1b}[31mred", "request": null}
        ]
    });
    let text = super::deliveries::delivery_text(&d);
    let expected = "\
id            dlv_1
status        retrying
event         evt_1
event type    job.failed
endpoint      ep_1
tenant        acme
attempts      2
last status   500
last attempt  t2
next attempt  t3
created       t0
updated       t2

attempt 1 at t1: connect, 3 ms
  request
    POST http://r/hook
    webhook-id: evt_1

    {\"a\":1}
    (rebuilt with the endpoint's current format and secrets, which changed after this attempt)
  response
    status  -
    error   connect
    detail  connection refused

attempt 2 at t2: HTTP 500, 12 ms
  request
    (nothing was sent)
  response
    status  500
    error   http_status
    detail  -

    oops
    \\u{1b}[31mred
";
    assert_eq!(text, expected);
}
