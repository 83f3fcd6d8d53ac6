//! Runs the reference documents' own verification code (ported line by line under
//! `tests/verifiers/`) on recorded deliveries: JavaScript by real Node.js, Python by real Python.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::Recorded;

/// A verifier: the interpreter and the script under `tests/verifiers/`.
#[derive(Debug, Clone, Copy)]
pub struct Verifier {
    pub program: &'static str,
    pub script: &'static str,
}

const fn node(script: &'static str) -> Verifier {
    Verifier {
        program: "node",
        script,
    }
}

pub const COREWEAVE_NODE: Verifier = node("coreweave.js");
pub const GPUAI_NODE: Verifier = node("gpuai.js");
pub const HUDDLE01_NODE: Verifier = node("huddle01.js");
pub const CORTEX_NODE: Verifier = node("cortex.js");
pub const HUDDLE01_PYTHON: Verifier = Verifier {
    program: "python3",
    script: "huddle01.py",
};

fn verifier_path(script: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/verifiers")
        .join(script)
}

/// The verifier's verdict on each `(secret, request)`: `Ok` or the reason it refused.
pub fn run_verifier(v: Verifier, items: &[(&str, &Recorded)]) -> Vec<Result<(), String>> {
    let input: Vec<Value> = items
        .iter()
        .map(|(secret, r)| json!({"secret": secret, "headers": r.headers, "body": r.body_str()}))
        .collect();
    let input = serde_json::to_vec(&input).unwrap();
    let script = verifier_path(v.script);
    let mut child = Command::new(v.program)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} {}: {e}", v.program, script.display()));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n{stdout}\n{}",
        v.program,
        v.script,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Result<(), String>> = stdout
        .lines()
        .map(|l| match l {
            "ok" => Ok(()),
            other => Err(other.to_owned()),
        })
        .collect();
    assert_eq!(
        verdicts.len(),
        items.len(),
        "{} output:\n{stdout}",
        v.script
    );
    verdicts
}

/// Every item verifies; otherwise panics with each refusal and the request it refused.
#[track_caller]
pub fn assert_verifies(v: Verifier, items: &[(&str, &Recorded)]) {
    let bad: Vec<String> = run_verifier(v, items)
        .into_iter()
        .zip(items)
        .filter_map(|(r, (_, req))| {
            r.err().map(|why| {
                format!(
                    "{why}\n  headers {:?}\n  body {}",
                    req.headers,
                    req.body_str()
                )
            })
        })
        .collect();
    assert!(bad.is_empty(), "{} refused:\n{}", v.script, bad.join("\n"));
}

/// Whether the `standardwebhooks` Python library accepts `req` signed with `secret`.
pub fn standardwebhooks_accepts(secret: &str, req: &Recorded) -> bool {
    let input = serde_json::to_vec(&[json!({
        "secret": secret, "headers": req.headers, "body": req.body_str(),
    })])
    .unwrap();
    let mut child = Command::new("python3")
        .arg(super::verify_script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) if stdout.trim() == "ok 1" => true,
        Some(1) if stdout.contains("FAIL") => false,
        _ => panic!("standardwebhooks verifier: {}\n{stdout}", out.status),
    }
}
