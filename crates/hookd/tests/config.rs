//! Configuration: invalid configs exit 64 with one line on stderr; environment overrides.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;

/// Runs hookd on `config_path`, expects exit code 64 and exactly one line on stderr.
async fn expect_config_error(config_path: &Path, env: &[(&str, &str)], what: &str) {
    let mut p = Proc::spawn(config_path, env);
    let st = p.expect_exit(PATIENCE).await;
    assert_eq!(
        st.code(),
        Some(64),
        "{what}: want exit code 64, got {st}\n{}",
        p.dump_logs()
    );
    let lines: Vec<String> = p
        .stderr_lines()
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: want exactly one line on stderr, got {lines:#?}"
    );
    assert!(
        !p.stdout_lines().iter().any(|l| l.contains("listening on")),
        "{what}: it started listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = Config::new(dir.path())
        .set("", "listen", "\"nonsense\"")
        .write(dir.path());
    expect_config_error(&path, &[], "listen = \"nonsense\"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_values_and_syntax() {
    let cases: &[(&str, &str, &str)] = &[
        ("ingest", "max_body_bytes", "\"lots\""),
        ("sender", "timeout", "\"soon\""),
        ("retry", "schedule", "\"200ms\""),
        ("retry", "schedule", "[\"200ms\", \"later\"]"),
        ("sender", "allow_private_targets", "\"maybe\""),
        ("events", "types", "42"),
    ];
    for (section, key, value) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = Config::new(dir.path())
            .set(section, key, value)
            .write(dir.path());
        expect_config_error(&path, &[], &format!("[{section}] {key} = {value}")).await;
    }
    // Not TOML at all.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "listen = \n[auth\nadmin_key = ").unwrap();
    expect_config_error(&path, &[], "TOML syntax error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_config_file() {
    let dir = tempfile::tempdir().unwrap();
    expect_config_error(&dir.path().join("does-not-exist.toml"), &[], "missing file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_listen_from_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = Config::new(dir.path()).write(dir.path());
    expect_config_error(
        &path,
        &[("HOOKD_LISTEN", "nonsense")],
        "HOOKD_LISTEN=nonsense",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let env_data = dir.path().join("env-data");
    let env_key = "env-admin-key-9876543210";
    let path = Config::new(dir.path()).write(dir.path());
    let d = Daemon::start_path(
        &path,
        &[
            ("HOOKD_ADMIN_KEY", env_key),
            ("HOOKD_DATA_DIR", env_data.to_str().unwrap()),
            ("HOOKD_ALLOW_PRIVATE_TARGETS", "false"),
        ],
    )
    .await;
    d.api
        .get("/v1/endpoints")
        .await
        .expect_error(401, "UNAUTHORIZED");
    let api = d.api.with_key(env_key);
    api.get("/v1/endpoints").await.expect(200);
    api.post(
        "/v1/endpoints",
        &json!({"name": "x", "url": "http://127.0.0.1:1/x", "event_types": ["*"]}),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    assert!(env_data.is_dir(), "HOOKD_DATA_DIR was not used");
    assert!(
        !dir.path().join("data").exists(),
        "the file's data_dir was used although HOOKD_DATA_DIR overrides it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_when_keys_are_left_out() {
    // Only the keys the harness needs: every other key comes from the built-in default.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("minimal.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {}\n[auth]\nadmin_key = {}\n",
            toml_str(&dir.path().join("data").to_string_lossy()),
            toml_str(ADMIN_KEY)
        ),
    )
    .unwrap();
    let d = Daemon::start_path(&path, &[]).await;
    let types = d.api.get("/v1/event-types").await.expect(200).clone();
    let types = types["data"].as_array().unwrap();
    assert_eq!(types.len(), 17, "the default [events] types: {types:?}");
    // allow_private_targets defaults to false.
    d.api
        .post(
            "/v1/endpoints",
            &json!({"name": "x", "url": "http://127.0.0.1:1/x", "event_types": ["*"]}),
        )
        .await
        .expect_error(403, "FORBIDDEN");
    // The default body limit is 256 KiB: 200 KiB is accepted, 300 KiB is not.
    let ok = json!({"type": "job.created", "data": {"b": "x".repeat(200 * 1024)}});
    d.api.post("/v1/events", &ok).await.expect(202);
    let big = json!({"type": "job.created", "data": {"b": "x".repeat(300 * 1024)}});
    d.api
        .post("/v1/events", &big)
        .await
        .expect_error(413, "PAYLOAD_TOO_LARGE");
}

/// Every regular file below `dir`, read whole.
fn files_below(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push(bytes);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_admin_key_never_reaches_a_log_and_only_its_hash_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::new(dir.path()).set("auth", "admin_key", "\"\"");
    let mut d = Daemon::start(dir.path(), &cfg).await;
    // stdout is a pipe here, not a terminal: the key goes to a file only its owner can read,
    // and the log says where.
    let key_file = dir.path().join("data").join("admin.key");
    let key = std::fs::read_to_string(&key_file)
        .unwrap_or_else(|e| panic!("no {}: {e}\n{}", key_file.display(), d.proc.dump_logs()))
        .trim()
        .to_owned();
    assert!(key.len() >= 32, "{key}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert!(
        d.proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains(&*key_file.to_string_lossy())),
        "the log does not name the key file\n{}",
        d.proc.dump_logs()
    );
    d.api.with_key(&key).get("/v1/endpoints").await.expect(200);
    d.api
        .get("/v1/endpoints")
        .await
        .expect_error(401, "UNAUTHORIZED");
    assert!(
        ![d.proc.stdout_lines(), d.proc.stderr_lines()]
            .concat()
            .iter()
            .any(|l| l.contains(&key)),
        "the key reached stdout or the log"
    );
    d.proc.sigterm();
    assert_eq!(d.proc.expect_exit(PATIENCE).await.code(), Some(0));

    // The operator keeps the key elsewhere and deletes the file: the stored hash still opens.
    std::fs::remove_file(&key_file).unwrap();
    let d = Daemon::start_path(&d.config_path, &[]).await;
    assert!(
        !d.proc
            .stdout_lines()
            .iter()
            .any(|l| l.contains("admin key")),
        "a second start shows no key"
    );
    assert!(!key_file.exists(), "a second start writes the key again");
    d.api.with_key(&key).get("/v1/endpoints").await.expect(200);
    let needle = key.as_bytes();
    for bytes in files_below(&dir.path().join("data")) {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the plain key is stored on disk"
        );
    }
}
