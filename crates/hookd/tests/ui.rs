//! The web inspector end to end: the real daemon and receiver, seeded through the API, driven
//! in headless Chromium by `tests/ui/inspector.mjs` (every page and button; screenshots under
//! `target/ui-screenshots/`).

mod common;

use common::ui::{fresh_screenshot_dir, run_inspector};
use common::*;
use serde_json::{json, Value};

const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// Must match inspector.mjs: it looks for this text on the page and for no script it could run.
const HOSTILE: &str = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>";
const DELIVERED: usize = 6;

/// Every header the API shows for an attempt is the one the receiver got, and the body is too.
fn assert_request_is_the_one_sent(shown: &Value, got: &Recorded) {
    let req = &shown["request"];
    assert_eq!(req["method"], "POST", "{shown}");
    assert_eq!(req["body"].as_str(), Some(got.body_str()), "{shown}");
    assert_eq!(req["endpoint_updated_since"], false, "{shown}");
    let headers = req["headers"].as_array().expect("request headers");
    for h in headers {
        let name = h["name"].as_str().unwrap();
        assert_eq!(
            Some(h["value"].as_str().unwrap()),
            got.header(name),
            "header {name}: shown {h}, sent {:?}",
            got.headers
        );
    }
    // The transport adds only these.
    let shown_names: Vec<&str> = headers
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    for name in got.headers.keys() {
        assert!(
            shown_names.contains(&name.as_str()) || ["host", "content-length"].contains(&&**name),
            "header {name} was sent but is not shown: {shown_names:?}"
        );
    }
}

/// Posts an `instance.ready` event with `data`; waits until its one delivery is `status`.
async fn post_and_wait(api: &Api, data: Value, status: &str) -> String {
    let ev = api
        .post_event(json!({"type": "instance.ready", "data": data}))
        .await;
    let deliveries = api
        .wait_event_deliveries(ev["id"].as_str().unwrap(), 1, PATIENCE)
        .await;
    let id = deliveries[0]["id"].as_str().unwrap().to_string();
    api.wait_delivery_status(&id, status, PATIENCE).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inspector_pages_and_buttons() {
    common::ui::require_browser_tools();
    let (_dir, rx, d) = setup(|c| c).await;
    let api = &d.api;
    rx.script(
        "/hook",
        Reply::FailThenOk {
            fails: 3,
            fail_status: 500,
            ok_status: 200,
        },
    );
    let (ep_id, _, _) = api
        .create_endpoint(json!({
            "name": "inspector demo",
            "url": rx.url("/hook"),
            "event_types": ["*"],
        }))
        .await;

    // One delivery fails three times (the schedule has two retries) and is dead-lettered.
    let dlv = post_and_wait(api, json!({"note": HOSTILE}), "dead_lettered").await;
    let shown = api.delivery(&dlv).await;
    let sent = rx.wait_for_path("/hook", 3, PATIENCE).await;
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{shown}");
    for (a, got) in attempts.iter().zip(&sent) {
        assert_request_is_the_one_sent(a, got);
    }

    // The rest are delivered at once.
    for i in 0..DELIVERED {
        post_and_wait(api, json!({"n": i}), "delivered").await;
    }

    let shots = fresh_screenshot_dir();
    let out = run_inspector(&d.url(""), ADMIN_KEY, &shots).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "inspector.mjs failed ({}):\n{stdout}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        d.proc.dump_logs()
    );

    // What the buttons did, seen through the API.
    let retried = api.delivery(&dlv).await;
    assert_eq!(retried["status"], "delivered", "{retried}");
    assert_eq!(
        retried["attempts"].as_array().unwrap().len(),
        4,
        "{retried}"
    );
    let ep = api.get(&format!("/v1/endpoints/{ep_id}")).await;
    let ep = ep.expect(200);
    assert_eq!(ep["enabled"], true, "disabled, then enabled again: {ep}");
    assert!(
        ep["previous_secret_valid_until"].is_string(),
        "the secret was rotated: {ep}"
    );
    let rotated = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rotated-secret "))
        .expect("inspector.mjs prints the secret it was shown");
    // The secret the dialog showed is the one deliveries are now signed with.
    let n = rx.requests_to("/hook").len();
    let ev = api
        .post_event(json!({"type": "instance.ready", "data": {}}))
        .await;
    let reqs = rx.wait_for_path("/hook", n + 1, PATIENCE).await;
    let req = reqs
        .iter()
        .find(|r| r.webhook_id() == ev["id"].as_str().unwrap())
        .expect("the last event reached the receiver");
    assert_signed(req, rotated);

    let mut taken: Vec<String> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    taken.sort();
    let expected: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("screenshot "))
        .map(str::to_owned)
        .collect();
    assert_eq!(taken, expected, "screenshots in {}", shots.display());
    assert!(taken.len() >= 13, "a screenshot of each page: {taken:?}");
    for name in &taken {
        let png = std::fs::read(shots.join(name)).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is not a PNG");
    }
}
