//! Every preset's deliveries pass the verification code of its reference document (seeds 000 to
//! 003), ported line by line and run by real Node.js and real Python; rotation overlap checked
//! with the `standardwebhooks` library; per-endpoint retry schedules; bad format input refused.

mod common;

use common::verifiers::*;
use common::*;
use serde_json::{json, Value};

/// Data with what JavaScript prints differently from the producer: non-ASCII text, escapes,
/// floats, exponents, integers past 2^53, `-0`, array-index keys and duplicate keys.
const PAYLOADS: &[(&str, &str)] = &[
    (
        "instance.ready",
        r#"{"instance_id":"ins_01HX","gpu_type":"h100_sxm","ip_address":"185.123.45.67"}"#,
    ),
    (
        "deployment.running",
        r#"{"deployment_id":"dep_abc123","hostname":"my-training-run","specs":{"gpu_model":"H100","gpu_count":1,"gpu_vram_gb":80,"price_per_hr":1.71}}"#,
    ),
    (
        "job.completed",
        r#"{"name":"Zoë 日本語 😀 \u00e9\ud83d\ude00","sep":"\u2028\u2029","ctl":"\u0001\u001f\u007f"}"#,
    ),
    (
        "job.failed",
        r#"{"s":"quote \" backslash \\ slash \/ tab \t nl \n cr \r bs \b ff \f","k\"ey":"v"}"#,
    ),
    (
        "node.unhealthy",
        r#"{"price":1.710,"tiny":1e-7,"small":0.000001,"big":1E21,"bigger":1.5e+300,"neg0":-0.0,"exp":2.5e+3,"third":0.30000000000000004}"#,
    ),
    (
        "volume.attached",
        r#"{"id":12345678901234567890,"past53":9007199254740993,"neg":-9223372036854775809,"int":100,"float":100.0}"#,
    ),
    (
        "gpu.available",
        r#" { "b" : 1 , "a" : 2 , "10" : 3 , "2" : 4 , "01" : 5 , "a" : 6 , "4294967295" : 7 } "#,
    ),
    (
        "job.started",
        r#"{"nested":[1,[2,[3,{"x":null,"y":[true,false,{}],"z":[]}]]],"empty":""}"#,
    ),
    (
        "job.created",
        r#"{"list":[1,"two",{"3":4}],"__proto__":{"x":1}}"#,
    ),
];

/// Each preset and the verifiers of its document.
const PRESETS: &[(&str, &[Verifier])] = &[
    ("coreweave", &[COREWEAVE_NODE]),
    ("gpuai", &[GPUAI_NODE]),
    ("huddle01", &[HUDDLE01_NODE, HUDDLE01_PYTHON]),
    ("cortex", &[CORTEX_NODE]),
];

#[tokio::test]
async fn every_preset_passes_its_documents_verification_code() {
    let (_dir, rx, daemon) = setup(|c| c).await;
    let api = &daemon.api;
    let mut secrets = Vec::new();
    for (preset, _) in PRESETS {
        let (_, secret, ep) = api
            .create_endpoint(json!({
                "name": preset,
                "url": rx.url(&format!("/{preset}")),
                "event_types": ["*"],
                "preset": preset,
            }))
            .await;
        assert_eq!(ep["format"]["preset"], *preset, "{ep}");
        secrets.push(secret);
    }
    // Generated secrets take each document's form.
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    assert!(hex64(&secrets[0]), "coreweave secret {}", secrets[0]);
    assert!(hex64(&secrets[1]), "gpuai secret {}", secrets[1]);
    assert!(
        secrets[2].starts_with("whsec_") && hex64(&secrets[2][6..]),
        "huddle01 secret {}",
        secrets[2]
    );
    assert!(hex64(&secrets[3]), "cortex secret {}", secrets[3]);

    let mut posted = Vec::new();
    for (event_type, data) in PAYLOADS {
        let raw = format!(r#"{{"type":"{event_type}","data":{data}}}"#);
        let ev = api
            .post_raw("/v1/events", &raw, &[])
            .await
            .expect(202)
            .clone();
        posted.push((ev["id"].as_str().unwrap().to_owned(), *event_type));
    }
    for ((preset, verifiers), secret) in PRESETS.iter().zip(&secrets) {
        let path = format!("/{preset}");
        let reqs = rx.wait_for_path(&path, PAYLOADS.len(), secs(30)).await;
        assert_eq!(
            reqs.len(),
            PAYLOADS.len(),
            "{preset}: one delivery per event"
        );
        for v in *verifiers {
            let items: Vec<(&str, &Recorded)> = reqs.iter().map(|r| (secret.as_str(), r)).collect();
            assert_verifies(*v, &items);
            // The same deliveries under another secret are refused: the verifiers can fail.
            let wrong: Vec<(&str, &Recorded)> = reqs
                .iter()
                .map(|r| ("a-wrong-secret-0123456789", r))
                .collect();
            assert!(
                run_verifier(*v, &wrong).iter().all(Result::is_err),
                "{preset}: {} accepted a wrong secret",
                v.script
            );
        }
        for r in &reqs {
            let body = r.json();
            let (id, ty) = match *preset {
                "huddle01" => (None, body["event"].clone()),
                _ => (body["id"].as_str().map(str::to_owned), body["type"].clone()),
            };
            let known = posted
                .iter()
                .any(|(pid, pty)| *pty == ty && id.as_ref().is_none_or(|i| i == pid));
            assert!(known, "{preset}: body {body} is none of the posted events");
        }
    }
    // Preset headers as the documents name them.
    let gpu = rx.requests_to("/gpuai");
    for r in &gpu {
        assert_eq!(r.header("gpuai-event-id"), r.json()["id"].as_str(), "{r:?}");
        assert!(r.header("gpuai-signature").unwrap().starts_with("t="));
    }
    let cw = &rx.requests_to("/coreweave")[0];
    assert!(cw.header("x-coreweave-timestamp").is_some() && cw.header("webhook-id").is_none());
    let cortex = &rx.requests_to("/cortex")[0];
    assert!(
        cortex.json()["createdAt"].is_string(),
        "{}",
        cortex.body_str()
    );
    let huddle = &rx.requests_to("/huddle01")[0];
    assert!(
        huddle.json()["timestamp"].is_string(),
        "{}",
        huddle.body_str()
    );
}

#[tokio::test]
async fn customer_chosen_secrets_and_static_headers() {
    let (_dir, rx, daemon) = setup(|c| c).await;
    let api = &daemon.api;
    let chosen = "your-webhook-secret";
    let (id, secret, ep) = api
        .create_endpoint(json!({
            "name": "cortex",
            "url": rx.url("/cortex"),
            "event_types": ["job.*"],
            "preset": "cortex",
            "secret": chosen,
            "headers": {"X-Tenant": "acme", "Authorization": "Bearer tok_1"},
        }))
        .await;
    assert_eq!(secret, chosen);
    assert_eq!(ep["format"]["headers"]["X-Tenant"], "acme");
    assert_eq!(
        ep["format"]["retry_schedule"],
        json!([30, 120, 600, 1800, 3600])
    );
    api.post_event(json!({"type": "job.completed", "data": {"job": {"cost": {"final": 0.08}}}}))
        .await;
    let req = &rx.wait_for_path("/cortex", 1, secs(20)).await[0];
    assert_eq!(req.header("x-tenant"), Some("acme"));
    assert_eq!(req.header("authorization"), Some("Bearer tok_1"));
    assert_verifies(CORTEX_NODE, &[(chosen, req)]);
    // Huddle01's `whsec_...` secret is plain text to its snippets; a given one is used as is.
    let huddle_secret = "whsec_a1b2c3d4e5f6signing_secret_here";
    let (_, s, _) = api
        .create_endpoint(json!({
            "name": "h", "url": rx.url("/h"), "event_types": ["gpu.available"],
            "preset": "huddle01", "secret": huddle_secret,
        }))
        .await;
    assert_eq!(s, huddle_secret);
    api.post_event(json!({"type": "gpu.available", "data": {"gpu": "H100", "n": 1e2}}))
        .await;
    let req = &rx.wait_for_path("/h", 1, secs(20)).await[0];
    assert_verifies(HUDDLE01_NODE, &[(huddle_secret, req)]);
    assert_verifies(HUDDLE01_PYTHON, &[(huddle_secret, req)]);
    let _ = id;
}

/// Waits until the rotation overlap reported by the API is over.
async fn wait_overlap_over(api: &Api, id: &str) {
    let path = format!("/v1/endpoints/{id}");
    wait_for(
        || async {
            let ep = api.get(&path).await.expect(200).clone();
            if ep["previous_secret_valid_until"].is_null() {
                Ok(())
            } else {
                Err(ep.to_string())
            }
        },
        "the rotation overlap to end",
        secs(30),
    )
    .await;
}

#[tokio::test]
async fn standard_webhooks_rotation_signs_with_both_secrets_during_the_overlap_only() {
    let (_dir, rx, daemon) = setup(|c| c).await;
    let api = &daemon.api;
    let (id, old, _) = api
        .create_endpoint(json!({"name": "s", "url": rx.url("/s"), "event_types": ["*"]}))
        .await;
    let rotated = api
        .post(
            &format!("/v1/endpoints/{id}/rotate-secret"),
            &json!({"overlap_seconds": 2}),
        )
        .await
        .expect(200)
        .clone();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(
        rotated["previous_secret_valid_until"].is_string(),
        "{rotated}"
    );

    api.post_event(json!({"type": "job.completed", "data": {"n": 1}}))
        .await;
    let during = rx.wait_for_path("/s", 1, secs(20)).await[0].clone();
    assert_eq!(
        during
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2,
        "{during:?}"
    );
    assert!(
        standardwebhooks_accepts(&new, &during),
        "new secret during the overlap"
    );
    assert!(
        standardwebhooks_accepts(&old, &during),
        "old secret during the overlap"
    );

    wait_overlap_over(api, &id).await;
    api.post_event(json!({"type": "job.completed", "data": {"n": 2}}))
        .await;
    let after = rx.wait_for_path("/s", 2, secs(20)).await[1].clone();
    assert!(
        standardwebhooks_accepts(&new, &after),
        "new secret after the window"
    );
    assert!(
        !standardwebhooks_accepts(&old, &after),
        "old secret after the window"
    );
}

#[tokio::test]
async fn t_v1_rotation_sends_two_v1_entries_and_single_value_schemes_the_new_one() {
    let (_dir, rx, daemon) = setup(|c| c).await;
    let api = &daemon.api;
    let mut ids = Vec::new();
    for preset in ["gpuai", "cortex", "huddle01", "coreweave"] {
        let (id, old, _) = api
            .create_endpoint(json!({
                "name": preset, "url": rx.url(&format!("/{preset}")),
                "event_types": ["*"], "preset": preset,
            }))
            .await;
        let new = api
            .post(&format!("/v1/endpoints/{id}/rotate-secret"), &json!({}))
            .await
            .expect(200)["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        ids.push((preset, id, old, new));
    }
    api.post_event(json!({"type": "job.completed", "data": {"price": 1.50}}))
        .await;
    for (preset, _, old, new) in &ids {
        let req = rx.wait_for_path(&format!("/{preset}"), 1, secs(20)).await[0].clone();
        match *preset {
            "gpuai" | "cortex" => {
                let name = if *preset == "gpuai" {
                    "gpuai-signature"
                } else {
                    "x-cortex-signature"
                };
                let sig = req.header(name).unwrap();
                assert_eq!(sig.matches(",v1=").count(), 2, "{sig}");
                // gpu.ai's snippet keeps the last `v1=` (Object.fromEntries), Cortex's the first.
                let (reads, ignores) = if *preset == "gpuai" {
                    (old, new)
                } else {
                    (new, old)
                };
                let v = if *preset == "gpuai" {
                    GPUAI_NODE
                } else {
                    CORTEX_NODE
                };
                assert_verifies(v, &[(reads, &req)]);
                assert!(run_verifier(v, &[(ignores, &req)])[0].is_err());
            }
            "huddle01" => {
                assert_verifies(HUDDLE01_NODE, &[(new, &req)]);
                assert_verifies(HUDDLE01_PYTHON, &[(new, &req)]);
                assert!(run_verifier(HUDDLE01_PYTHON, &[(old, &req)])[0].is_err());
            }
            _ => {
                assert_verifies(COREWEAVE_NODE, &[(new, &req)]);
                assert!(run_verifier(COREWEAVE_NODE, &[(old, &req)])[0].is_err());
            }
        }
    }
}

#[tokio::test]
async fn an_endpoints_retry_schedule_overrides_the_daemons() {
    // The daemon's own schedule would take minutes; the endpoint's takes two short retries.
    let (_dir, rx, daemon) = setup(|c| c.set("retry", "schedule", "[\"10m\"]")).await;
    rx.script("/fail", Reply::Status(500));
    let api = &daemon.api;
    let (_, _, ep) = api
        .create_endpoint(json!({
            "name": "f", "url": rx.url("/fail"), "event_types": ["*"],
            "preset": "gpuai", "retry_schedule": [1, 1],
        }))
        .await;
    assert_eq!(ep["format"]["retry_schedule"], json!([1, 1]));
    let ev = api
        .post_event(json!({"type": "job.completed", "data": {}}))
        .await;
    let ds = api
        .wait_event_deliveries(ev["id"].as_str().unwrap(), 1, secs(20))
        .await;
    let d = api
        .wait_delivery_status(ds[0]["id"].as_str().unwrap(), "dead_lettered", secs(30))
        .await;
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(3), "{d}");
    assert_eq!(rx.requests_to("/fail").len(), 3);
}

#[tokio::test]
async fn bad_format_input_is_refused_and_nothing_is_stored() {
    let (_dir, rx, daemon) = setup(|c| c).await;
    let api = &daemon.api;
    let base = |extra: Value| {
        let mut v = json!({"name": "x", "url": rx.url("/x"), "event_types": ["*"]});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    let cases = [
        (json!({"preset": "stripe"}), "preset"),
        (json!({"signature_scheme": "md5"}), "signature_scheme"),
        (json!({"envelope": "xml"}), "envelope"),
        (json!({"body_json": "python"}), "body_json"),
        (
            json!({"signature_header": "bad header"}),
            "signature_header",
        ),
        (
            json!({"preset": "coreweave", "timestamp_header": "Connection"}),
            "timestamp_header",
        ),
        (json!({"event_id_header": "x:y"}), "event_id_header"),
        (json!({"headers": {"Connection": "close"}}), "headers"),
        (
            json!({"headers": {"Transfer-Encoding": "chunked"}}),
            "headers",
        ),
        (
            json!({"headers": {"Content-Type": "text/plain"}}),
            "headers",
        ),
        (json!({"headers": {"Webhook-Signature": "v1,x"}}), "headers"),
        (
            json!({"preset": "gpuai", "headers": {"Gpuai-Signature": "x"}}),
            "headers",
        ),
        (json!({"headers": {"X-A": "line\nbreak"}}), "headers"),
        (json!({"headers": {"X A": "v"}}), "headers"),
        (json!({"preset": "gpuai", "secret": "short"}), "secret"),
        (
            json!({"preset": "gpuai", "secret": "has spaces in the secret"}),
            "secret",
        ),
        (json!({"secret": "not-a-whsec-secret-at-all"}), "secret"),
        (json!({"retry_schedule": []}), "retry_schedule"),
        (json!({"retry_schedule": vec![1; 21]}), "retry_schedule"),
        (json!({"retry_schedule": [0]}), "retry_schedule"),
    ];
    for (extra, field) in &cases {
        let r = api.post("/v1/endpoints", &base(extra.clone())).await;
        r.expect_error(400, "VALIDATION_ERROR");
        let msg = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!("`{field}`")),
            "{extra}: message {msg:?} names no {field}"
        );
    }
    let list = api.get("/v1/endpoints").await.expect(200).clone();
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");

    // Updates and rotation refuse the same way and leave the endpoint as it was.
    let (id, secret, before) = api.create_endpoint(base(json!({"preset": "gpuai"}))).await;
    let path = format!("/v1/endpoints/{id}");
    for (extra, _) in &cases[..14] {
        api.patch(&path, extra)
            .await
            .expect_error(400, "VALIDATION_ERROR");
    }
    api.patch(&path, &json!({"signature_scheme": "standard-webhooks"}))
        .await
        .expect_error(400, "VALIDATION_ERROR");
    let rot = format!("{path}/rotate-secret");
    api.post(&rot, &json!({"overlap_seconds": 8 * 86400}))
        .await
        .expect_error(400, "VALIDATION_ERROR");
    api.post(&rot, &json!({"secret": "short"}))
        .await
        .expect_error(400, "VALIDATION_ERROR");
    let after = api.get(&path).await.expect(200).clone();
    assert_eq!(after["format"], before["format"]);
    assert_eq!(after["updated_at"], before["updated_at"]);
    // The secret is unchanged: a delivery verifies with the original one.
    api.post_event(json!({"type": "job.completed", "data": {}}))
        .await;
    let req = &rx.wait_for_path("/x", 1, secs(20)).await[0];
    assert_verifies(GPUAI_NODE, &[(&secret, req)]);
}
