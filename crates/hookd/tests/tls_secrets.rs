//! TLS on the listener (HTTP/1.1 and HTTP/2 by ALPN, SIGHUP reload, bad files refused) and
//! endpoint secrets at rest (nowhere in the data directory, the master key checked at start,
//! rekey, plain stores from before migrated).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::tls::*;
use common::*;
use serde_json::json;

/// ALPN protocols offered, the one the server should pick, the HTTP version answered.
type AlpnCase = (&'static [&'static [u8]], &'static [u8], http::Version);

async fn start_tls(config_path: &Path) -> (Proc, std::net::SocketAddr) {
    let mut proc = Proc::spawn(config_path, &[]);
    let addr = wait_listening(&mut proc, "https").await;
    (proc, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_over_https_with_http1_and_http2_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let cert = ca.issue(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
    let (_proc, addr) = start_tls(&tls_config(dir.path(), &cert)).await;
    let cases: [AlpnCase; 3] = [
        (&[b"http/1.1"], b"http/1.1", http::Version::HTTP_11),
        (&[b"h2"], b"h2", http::Version::HTTP_2),
        (&[b"h2", b"http/1.1"], b"h2", http::Version::HTTP_2),
    ];
    for (offer, chosen, version) in cases {
        let mut c = TlsConn::open(addr, &ca.der(), offer).await;
        assert_eq!(c.alpn.as_deref(), Some(chosen));
        assert_eq!(c.peer_cert, cert.der);
        for _ in 0..2 {
            let (status, v, body) = c.get("/v1/endpoints").await;
            assert_eq!((status, v), (200, version), "{body}");
        }
    }
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = Api::new(&format!("http://{addr}"));
    assert!(plain
        .try_send(hyper::Method::GET, "/v1/endpoints", None, &[])
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_open_connections_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = ca.issue(&cert_path, &key_path);
    let (mut proc, addr) = start_tls(&tls_config(dir.path(), &first)).await;
    let mut old_h1 = TlsConn::open(addr, &ca.der(), &[b"http/1.1"]).await;
    let mut old_h2 = TlsConn::open(addr, &ca.der(), &[b"h2"]).await;
    assert_eq!(old_h1.peer_cert, first.der);
    assert_eq!(old_h1.get("/v1/endpoints").await.0, 200);
    assert_eq!(old_h2.get("/v1/endpoints").await.0, 200);

    let second = ca.issue(&cert_path, &key_path);
    assert_ne!(first.der, second.der);
    signal(&proc, "HUP");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut c = TlsConn::open(addr, &ca.der(), &[b"h2", b"http/1.1"]).await;
        if c.peer_cert == second.der {
            assert_eq!(c.get("/v1/endpoints").await.0, 200);
            break;
        }
        assert_eq!(c.peer_cert, first.der, "a certificate from neither file");
        assert!(
            Instant::now() < deadline,
            "new connections still get the first certificate\n{}",
            proc.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(old_h1.get("/v1/endpoints").await.0, 200, "open h1 dropped");
    assert_eq!(old_h2.get("/v1/endpoints").await.0, 200, "open h2 dropped");
    assert!(proc.try_exit().is_none(), "SIGHUP ended the daemon");

    // A reload that fails keeps the current certificate and says so in one line.
    write_atomically(&cert_path, b"not a certificate\n");
    signal(&proc, "HUP");
    let failed = |p: &Proc| {
        p.stderr_lines()
            .into_iter()
            .filter(|l| l.contains("reload failed"))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + PATIENCE;
    while failed(&proc).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no failed reload logged\n{}",
            proc.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lines = failed(&proc);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(&*cert_path.to_string_lossy()),
        "{lines:#?}"
    );
    let mut c = TlsConn::open(addr, &ca.der(), &[b"http/1.1"]).await;
    assert_eq!(c.peer_cert, second.der);
    assert_eq!(c.get("/v1/endpoints").await.0, 200);
    assert_eq!(old_h1.get("/v1/endpoints").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unreadable_tls_files_exit_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let good = ca.issue(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not pem at all\n").unwrap();
    let a_dir = dir.path().join("a-directory");
    std::fs::create_dir(&a_dir).unwrap();
    let other = ca.issue(&dir.path().join("c2.pem"), &dir.path().join("k2.pem"));
    let p = |p: &Path| toml_str(&p.to_string_lossy());
    let missing = dir.path().join("missing.pem");
    let cases = [
        (p(&missing), p(&good.key_file), "missing.pem"),
        (p(&good.cert_file), p(&missing), "missing.pem"),
        (p(&good.cert_file), p(&a_dir), "a-directory"),
        (p(&garbage), p(&good.key_file), "garbage.pem"),
        (p(&good.cert_file), p(&garbage), "garbage.pem"),
        (p(&good.cert_file), p(&other.key_file), "k2.pem"),
        (p(&good.cert_file), "\"\"".to_owned(), "tls"),
    ];
    for (cert, key, needle) in cases {
        let work = tempfile::tempdir().unwrap();
        let path = Config::new(work.path())
            .set("tls", "cert_file", &cert)
            .set("tls", "key_file", &key)
            .write(work.path());
        let mut proc = Proc::spawn(&path, &[]);
        let st = proc.expect_exit(PATIENCE).await;
        let what = format!("cert_file = {cert}, key_file = {key}");
        assert_eq!(st.code(), Some(64), "{what}\n{}", proc.dump_logs());
        let lines: Vec<String> = proc
            .stderr_lines()
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "{what}: {lines:#?}");
        assert!(lines[0].contains(needle), "{what}: {lines:#?}");
        assert!(
            !proc.stdout_lines().iter().any(|l| l.contains("listening")),
            "{what}"
        );
    }
}

/// A secret as the API gives it, and the forms its key could be written in on disk.
fn secret_forms(secret: &str) -> Vec<Vec<u8>> {
    let raw = secret_key(secret);
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        secret.as_bytes().to_vec(),
        b64.encode(&raw).into_bytes(),
        url.encode(&raw).into_bytes(),
        b64.encode(secret).into_bytes(),
        hex::encode(&raw).into_bytes(),
        hex::encode(secret).into_bytes(),
        raw,
    ]
}

#[track_caller]
fn assert_nowhere_below(dir: &Path, secrets: &[&str]) {
    for s in secrets {
        for form in secret_forms(s) {
            if let Some(f) = file_holding(dir, &form) {
                panic!(
                    "{} holds a form of a secret: {:?}",
                    f.display(),
                    String::from_utf8_lossy(&form)
                );
            }
        }
    }
}

async fn stop(d: &mut Daemon) {
    d.proc.sigterm();
    assert_eq!(d.proc.expect_exit(PATIENCE).await.code(), Some(0));
}

async fn post_and_receive(d: &Daemon, rx: &Receiver, n: usize) -> Recorded {
    d.api
        .post_event(json!({"type": "job.created", "data": {"n": n}}))
        .await;
    rx.wait_for(n, PATIENCE).await.pop().unwrap()
}

/// Starts hookd on `config_path` expecting it to fail because of the master key.
async fn expect_wrong_master_key(config_path: &Path, env: &[(&str, &str)]) {
    let mut p = Proc::spawn(config_path, env);
    let st = p.expect_exit(PATIENCE).await;
    assert_eq!(st.code(), Some(1), "{}", p.dump_logs());
    assert!(
        p.stderr_lines()
            .iter()
            .any(|l| l.contains("master key does not open the endpoint secrets")),
        "{}",
        p.dump_logs()
    );
    assert!(!p.stdout_lines().iter().any(|l| l.contains("listening")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_nowhere_in_the_data_dir_and_only_their_key_opens_them() {
    let (dir, rx, mut d) = setup(|c| c).await;
    let data = dir.path().join("data");
    let key_file = data.join("master.key");
    let master = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(mode(&key_file), 0o600);
    let logs = [d.proc.stdout_lines(), d.proc.stderr_lines()].concat();
    assert!(
        logs.iter()
            .any(|l| l.contains("master key") && l.contains(&*key_file.to_string_lossy())),
        "the start does not say where the key is\n{}",
        d.proc.dump_logs()
    );
    assert!(
        !logs.iter().any(|l| l.contains(master.trim())),
        "key logged"
    );

    let (id, first, _) = d
        .api
        .create_endpoint(json!({"name": "a", "url": rx.url("/a"), "event_types": ["*"]}))
        .await;
    let rotated = d
        .api
        .post(
            &format!("/v1/endpoints/{id}/rotate-secret"),
            &json!({"overlap_seconds": 3600}),
        )
        .await
        .expect(200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let req = post_and_receive(&d, &rx, 1).await;
    assert_signed(&req, &rotated);
    assert_signed(&req, &first);
    assert_nowhere_below(&data, &[&first, &rotated]);
    stop(&mut d).await;
    assert_nowhere_below(&data, &[&first, &rotated]);

    // The same key opens them again: both secrets still sign.
    let mut d = Daemon::start_path(&d.config_path, &[]).await;
    let req = post_and_receive(&d, &rx, 2).await;
    assert_signed(&req, &rotated);
    assert_signed(&req, &first);
    stop(&mut d).await;

    // Another key does not, and says so; a key that is no key is a config error.
    let other = hex::encode([7u8; 32]);
    expect_wrong_master_key(&d.config_path, &[("HOOKD_MASTER_KEY", &other)]).await;
    let mut p = Proc::spawn(&d.config_path, &[("HOOKD_MASTER_KEY", "open-sesame")]);
    assert_eq!(p.expect_exit(PATIENCE).await.code(), Some(64));
    let lines = p.stderr_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("HOOKD_MASTER_KEY") && !lines[0].contains("open-sesame"));
    // The key in the environment works like the file.
    let d = Daemon::start_path(&d.config_path, &[("HOOKD_MASTER_KEY", master.trim())]).await;
    assert_signed(&post_and_receive(&d, &rx, 3).await, &first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_then_restart_with_the_new_key() {
    let (dir, rx, mut d) = setup(|c| c).await;
    let (_, secret, _) = d
        .api
        .create_endpoint(json!({"name": "a", "url": rx.url("/a"), "event_types": ["*"]}))
        .await;
    assert_signed(&post_and_receive(&d, &rx, 1).await, &secret);
    stop(&mut d).await;

    let new_key = dir.path().join("keys").join("new.key");
    let out = std::process::Command::new(hookd_bin())
        .arg("rekey")
        .arg("--config")
        .arg(&d.config_path)
        .arg("--new-key-file")
        .arg(&new_key)
        .env_remove("HOOKD_MASTER_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("of 1 endpoints"), "{stdout}");
    assert_eq!(mode(&new_key), 0o600);
    let new_text = std::fs::read_to_string(&new_key).unwrap();
    assert!(!stdout.contains(new_text.trim()), "the new key on stdout");

    // The old key (still in <data_dir>/master.key) opens nothing now.
    expect_wrong_master_key(&d.config_path, &[]).await;
    let path = Config::new(dir.path())
        .set(
            "secrets",
            "master_key_file",
            &toml_str(&new_key.to_string_lossy()),
        )
        .write(dir.path());
    let mut d = Daemon::start_path(&path, &[]).await;
    assert_signed(&post_and_receive(&d, &rx, 2).await, &secret);
    stop(&mut d).await;
    assert_nowhere_below(&dir.path().join("data"), &[&secret]);

    // Rekeying to the key in use is refused.
    let out = std::process::Command::new(hookd_bin())
        .args(["rekey", "--new-key-file"])
        .arg(&new_key)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_plain_secrets_from_before_is_sealed_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    let data = dir.path().join("data");
    let secret = hookd_sender::sign::generate_secret();
    {
        // What builds from before secrets were sealed wrote.
        let store = hookd_log::SledStore::open(&hookd_log::SledConfig {
            path: data.join("db"),
            cache_bytes: 1 << 20,
        })
        .unwrap();
        let ep = hookd_types::Endpoint::new(
            hookd_types::EndpointId::generate(),
            "default",
            "from-before",
            &rx.url("/old"),
            vec!["*".into()],
            &secret,
            hookd_types::time::now_ms(),
        );
        hookd_log::EndpointStore::put_endpoint(&store, &ep).unwrap();
    }
    assert!(
        file_holding(&data, secret.as_bytes()).is_some(),
        "the old store holds the secret in plain text"
    );
    let mut d = Daemon::start(dir.path(), &Config::new(dir.path())).await;
    assert!(
        d.proc
            .stderr_lines()
            .iter()
            .any(|l| l.contains("stored in plain text") && l.contains("endpoints=1")),
        "{}",
        d.proc.dump_logs()
    );
    assert_signed(&post_and_receive(&d, &rx, 1).await, &secret);
    stop(&mut d).await;
    assert_nowhere_below(&data, &[&secret]);
    let d = Daemon::start_path(&d.config_path, &[]).await;
    assert!(!d
        .proc
        .stderr_lines()
        .iter()
        .any(|l| l.contains("stored in plain text")));
    assert_signed(&post_and_receive(&d, &rx, 2).await, &secret);
}
