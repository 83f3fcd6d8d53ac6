//! Standard Webhooks signatures of received requests, checked in Rust and by the public Python
//! library.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::{unix_now, Recorded};

pub fn verify_script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/verify_standardwebhooks.py"
    ))
}

/// The HMAC key of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Vec<u8> {
    let b64 = secret
        .strip_prefix("whsec_")
        .unwrap_or_else(|| panic!("secret does not start with whsec_: {secret:?}"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("secret is not whsec_+base64 ({e}): {secret:?}"))
}

/// Checks the Standard Webhooks headers of `req` against `secret` in Rust (ring HMAC).
#[track_caller]
pub fn assert_signed(req: &Recorded, secret: &str) {
    let id = req.header("webhook-id").expect("webhook-id header");
    let ts = req
        .header("webhook-timestamp")
        .expect("webhook-timestamp header");
    let ts_num: u64 = ts
        .parse()
        .unwrap_or_else(|_| panic!("webhook-timestamp is not unix seconds: {ts:?}"));
    let now = unix_now();
    assert!(
        ts_num + 60 >= now && ts_num <= now + 60,
        "webhook-timestamp {ts_num} is far from now {now}"
    );
    let sigs = req
        .header("webhook-signature")
        .expect("webhook-signature header");
    let expected = expected_signature(req, secret);
    assert!(
        signature_matches(req, secret),
        "webhook-signature {sigs:?} does not contain v1,{expected} (id {id}, ts {ts})"
    );
}

/// The base64 HMAC-SHA256 of `id.timestamp.body` under `secret`, from `req`'s headers.
pub fn expected_signature(req: &Recorded, secret: &str) -> String {
    let id = req.header("webhook-id").unwrap_or("");
    let ts = req.header("webhook-timestamp").unwrap_or("");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret_key(secret));
    let mut msg = format!("{id}.{ts}.").into_bytes();
    msg.extend_from_slice(&req.body);
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, &msg).as_ref())
}

/// Whether one of `req`'s `v1,` signatures is [`expected_signature`]; the timestamp's age is
/// not checked (see [`assert_signed`] for that).
pub fn signature_matches(req: &Recorded, secret: &str) -> bool {
    let expected = expected_signature(req, secret);
    req.header("webhook-signature")
        .unwrap_or("")
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

/// Verifies every `(secret, request)` with the public `standardwebhooks` Python library
/// through `scripts/verify_standardwebhooks.py`.
pub fn verify_with_python(items: &[(&str, &Recorded)]) {
    let input: Vec<Value> = items
        .iter()
        .map(|(secret, r)| {
            json!({
                "secret": secret,
                "headers": r.headers,
                "body": r.body_str(),
            })
        })
        .collect();
    let input = serde_json::to_vec(&input).unwrap();
    let script = verify_script();
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&input).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("{} did not finish within 30 s", script.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "standardwebhooks verification failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(
        stdout.trim(),
        format!("ok {}", items.len()),
        "unexpected verifier output; stderr: {stderr}"
    );
}
