//! The API over TLS: rustls with HTTP/2 and HTTP/1.1 offered by ALPN, behind a certificate slot
//! that SIGHUP refills from the configured files. A handshake reads the slot once, so open
//! connections keep the certificate they were made with and new ones get the new one.
//!
//! - [`TlsFiles`]: the configured files and the certificate read from them at start.
//! - [`CertSlot`]: the current certificate, swapped whole on reload.
//! - [`acceptor`]: the rustls acceptor the listener ([`crate::listener`]) runs each handshake
//!   with, in the connection's own task and bounded by [`HANDSHAKE_TIMEOUT`].
//! - [`reload_on_hangup`]: SIGHUP reloads; a reload that fails keeps the old certificate.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_rustls::rustls::crypto::ring::{default_provider, sign::any_supported_type};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `[tls] cert_file` and `key_file`, and the certificate they held at start.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub certified: Arc<CertifiedKey>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl TlsFiles {
    /// Reads both files; every failure is one line naming the file.
    pub fn load(cert_file: PathBuf, key_file: PathBuf) -> Result<Self, String> {
        let certified = Arc::new(read_certified_key(&cert_file, &key_file)?);
        Ok(Self {
            cert_file,
            key_file,
            certified,
        })
    }

    fn reload(&self) -> Result<Arc<CertifiedKey>, String> {
        read_certified_key(&self.cert_file, &self.key_file).map(Arc::new)
    }
}

fn read_certified_key(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<CertifiedKey, String> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert_file: {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file: {} holds no PEM certificate",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("tls.key_file: {}: {e}", key_file.display()))?;
    let signer = any_supported_type(&key)
        .map_err(|e| format!("tls.key_file: {}: {e}", key_file.display()))?;
    let certified = CertifiedKey::new(certs, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(e) => Err(format!(
            "tls: the key in {} does not go with the certificate in {}: {e}",
            key_file.display(),
            cert_file.display()
        )),
    }
}

/// The certificate handshakes are answered with.
#[derive(Debug)]
pub struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl CertSlot {
    pub fn new(certified: Arc<CertifiedKey>) -> Self {
        Self(RwLock::new(certified))
    }

    fn set(&self, certified: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = certified;
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The acceptor for the listener: rustls with h2 and http/1.1 by ALPN, its certificate read from
/// `slot` at each handshake.
pub fn acceptor(slot: Arc<CertSlot>) -> anyhow::Result<TlsAcceptor> {
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(slot);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// SIGHUP, registered now: from here on it no longer ends the process.
pub fn hangup_signal() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// On every SIGHUP, reads the certificate files again and puts what they hold in `slot`; if
/// they cannot be read, keeps the current certificate and logs one line.
pub async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    tls: Option<(TlsFiles, Arc<CertSlot>)>,
) {
    while hangup.recv().await.is_some() {
        match &tls {
            None => tracing::info!("SIGHUP: no [tls] certificate to reload"),
            Some((files, slot)) => match files.reload() {
                Ok(certified) => {
                    slot.set(certified);
                    tracing::info!(cert_file = %files.cert_file.display(), "reloaded the TLS certificate");
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "TLS certificate reload failed; still serving the previous certificate"
                ),
            },
        }
    }
}
