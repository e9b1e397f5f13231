//! The serving certificate: a [`CertStore`] that rustls asks on every handshake, fed either by
//! [`files::CertReloader`] (PEM files such as a cert-manager Secret, reloaded on change) or by
//! [`self_signed`] (a CA shared through a Secret, a serving certificate made here, and the CA
//! written into the ValidatingWebhookConfiguration by [`ca_bundle`]).
//!
//! ```text
//!  tls.crt + tls.key ─► CertReloader (poll 2 s) ─┐
//!                                                ├─► CertStore ─► rustls ServerConfig (TLS 1.2/1.3, http/1.1)
//!  CA Secret ─► self_signed::Issuer ─ leaf ──────┘
//!                       └─► ca_bundle: ValidatingWebhookConfiguration.webhooks[*].clientConfig.caBundle
//! ```

pub mod ca_bundle;
pub mod files;
pub mod self_signed;

use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate and key cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the certificate file holds no PEM certificate")]
    NoCertificate,
    #[error("the key file holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey,
    #[error("the PEM text cannot be read: {0}")]
    Pem(String),
    #[error("the key cannot serve this certificate: {0}; check that tls.crt and tls.key belong together")]
    Unusable(String),
}

/// The provider every TLS piece of the webhook uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its key from PEM text, checked to belong together.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, CertError> {
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Pem(e.to_string()))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| CertError::Pem(e.to_string()))?
        .ok_or(CertError::NoKey)?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| CertError::Unusable(e.to_string()))
}

/// The certificate served now; swapped atomically on reload, read on every handshake.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
        }
    }

    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().expect("certificate lock") = Arc::new(key);
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().expect("certificate lock").clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The server's TLS configuration: safe defaults of rustls, HTTP/1.1 only, certificates from
/// `store`.
pub fn server_config(store: Arc<CertStore>) -> rustls::ServerConfig {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}
