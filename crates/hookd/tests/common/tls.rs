//! TLS and key-file helpers: a test CA issuing server certificates (rcgen), a daemon serving
//! https, and a client connection whose protocol (ALPN) and server certificate the test sees.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};

use super::{toml_str, Config, Proc, ADMIN_KEY};

/// A certificate authority for 127.0.0.1 servers.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A server certificate and key written as PEM files.
pub struct ServerCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hookd test CA");
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        TestCa { issuer }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// The CA certificate as PEM, for a client to trust.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A new certificate for 127.0.0.1, written (each file atomically) to `cert_file` and
    /// `key_file`.
    pub fn issue(&self, cert_file: &Path, key_file: &Path) -> ServerCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        write_atomically(cert_file, cert.pem().as_bytes());
        write_atomically(key_file, key.serialize_pem().as_bytes());
        ServerCert {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            der: cert.der().clone(),
        }
    }
}

/// The harness config over TLS with `cert`, written to `<dir>/hookd.toml`; returns its path.
pub fn tls_config(dir: &Path, cert: &ServerCert) -> PathBuf {
    Config::new(dir)
        .set(
            "tls",
            "cert_file",
            &toml_str(&cert.cert_file.to_string_lossy()),
        )
        .set(
            "tls",
            "key_file",
            &toml_str(&cert.key_file.to_string_lossy()),
        )
        .write(dir)
}

pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits for `listening on <scheme>://ADDR` on stdout.
pub async fn wait_listening(proc: &mut Proc, scheme: &str) -> SocketAddr {
    let prefix = format!("listening on {scheme}://");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(a) = proc
            .stdout_lines()
            .iter()
            .find_map(|l| l.trim().strip_prefix(&prefix).map(str::to_owned))
        {
            return a.parse().unwrap();
        }
        if let Some(st) = proc.try_exit() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            panic!(
                "hookd exited ({st}) before `{prefix}`\n{}",
                proc.dump_logs()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no `{prefix}` in time\n{}",
            proc.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a signal (`HUP`, `TERM`) to the daemon.
pub fn signal(proc: &Proc, name: &str) {
    let st = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(proc.pid().to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{name} failed");
}

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

/// One TLS connection to the daemon, trusting only `ca`.
pub struct TlsConn {
    authority: String,
    pub alpn: Option<Vec<u8>>,
    pub peer_cert: CertificateDer<'static>,
    sender: Sender,
}

impl TlsConn {
    /// Connects offering the ALPN protocols `alpn` (e.g. `[b"h2"]`).
    pub async fn open(addr: SocketAddr, ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> TlsConn {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
        let session = tls.get_ref().1;
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let peer_cert = session.peer_certificates().unwrap()[0].clone().into_owned();
        let io = TokioIo::new(tls);
        let sender = if alpn.as_deref() == Some(b"h2") {
            let (s, conn) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
            tokio::spawn(conn);
            Sender::H2(s)
        } else {
            let (s, conn) = http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Sender::H1(s)
        };
        TlsConn {
            authority: addr.to_string(),
            alpn,
            peer_cert,
            sender,
        }
    }

    /// GET `path` with the admin key on this connection: (status, HTTP version, body).
    pub async fn get(&mut self, path: &str) -> (u16, http::Version, String) {
        // HTTP/2 names the authority in the request line, HTTP/1.1 in `Host`.
        let req = match &self.sender {
            Sender::H1(_) => http::Request::get(path).header("host", &self.authority),
            Sender::H2(_) => http::Request::get(format!("https://{}{path}", self.authority)),
        };
        let req = req
            .header("authorization", format!("Bearer {ADMIN_KEY}"))
            .body(Empty::new())
            .unwrap();
        let fut = async {
            match &mut self.sender {
                // The previous exchange may still be finishing: wait until the connection can
                // take a request, or hyper refuses it as "not ready".
                Sender::H1(s) => match s.ready().await {
                    Ok(()) => s.send_request(req).await,
                    Err(e) => Err(e),
                },
                Sender::H2(s) => match s.ready().await {
                    Ok(()) => s.send_request(req).await,
                    Err(e) => Err(e),
                },
            }
        };
        let resp = tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("no answer in time")
            .unwrap();
        let (status, version) = (resp.status().as_u16(), resp.version());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, version, String::from_utf8_lossy(&body).into_owned())
    }
}

/// Whether some regular file below `dir` holds `needle`; the first such file.
pub fn file_holding(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(f) = file_holding(&p, needle) {
                return Some(f);
            }
        } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            return Some(p);
        }
    }
    None
}

/// The file's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
