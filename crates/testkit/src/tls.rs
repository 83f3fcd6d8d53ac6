//! A fresh self-signed certificate for an https test server, and the server side of rustls.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("building the rustls server config: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A self-signed certificate and its key. The certificate is its own CA: a client trusts the
/// server by trusting [`SelfSigned::ca_pem`] (or [`SelfSigned::cert_der`]).
#[derive(Debug)]
pub struct SelfSigned {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pem: String,
}

impl SelfSigned {
    /// A certificate for `names` (DNS names or IP addresses, e.g. `127.0.0.1`).
    pub fn new(names: &[&str]) -> Result<SelfSigned, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = rcgen::CertificateParams::new(names)?.self_signed(&key)?;
        Ok(SelfSigned {
            pem: cert.pem(),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }

    /// A certificate for `127.0.0.1` and `localhost`.
    pub fn loopback() -> Result<SelfSigned, TlsError> {
        SelfSigned::new(&["127.0.0.1", "localhost"])
    }

    /// The certificate as PEM: what a client (or `[sender] ca_file`) trusts.
    pub fn ca_pem(&self) -> &str {
        &self.pem
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.clone()
    }

    /// A rustls server config (ring provider) offering h2 and http/1.1 by ALPN.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![self.cert.clone()], self.key.clone_key().into())?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}
