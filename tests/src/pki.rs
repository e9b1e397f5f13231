//! Test PKI: a throwaway CA and the certificates it signs, as PEM for files and kubeconfigs.
//! The lab's real control plane (serving, admin and controller-manager certificates, the
//! service-account signing key) and the tests that need TLS all take their keys from here.
//!
//! ```text
//!  Ca::new ─┬─► serving(cn, names)  ─► Issued { cert_pem, key_pem }  (serverAuth, SANs)
//!           └─► client(cn, groups)  ─► Issued                        (clientAuth, O = groups)
//!  signing_key() ─► SigningKey { private_pem, public_pem }           (service-account tokens)
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Making a key or certificate failed.
#[derive(Debug, thiserror::Error)]
#[error("test PKI: {what}: {source}")]
pub struct PkiError {
    what: String,
    #[source]
    source: rcgen::Error,
}

fn pki_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |source| PkiError { what, source }
}

/// A certificate authority that lives as long as the lab or test that made it.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A certificate and its private key, PEM encoded.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A key pair that signs tokens (kube-apiserver's service-account key).
#[derive(Clone)]
pub struct SigningKey {
    pub private_pem: String,
    pub public_pem: String,
}

impl Ca {
    /// A new self-signed CA (ECDSA P-256).
    pub fn new(common_name: &str) -> Result<Self, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err("CA"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(pki_err("CA key"))?;
        let cert_pem = params.self_signed(&key).map_err(pki_err("CA"))?.pem();
        Ok(Self {
            params,
            key,
            cert_pem,
        })
    }

    /// The CA certificate, for trust bundles (`certificate-authority-data`, `caBundle`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key (for components that sign with it).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A server certificate for `names` (DNS names and IP addresses).
    pub fn serving(&self, common_name: &str, names: &[&str]) -> Result<Issued, PkiError> {
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let what = format!("serving certificate {common_name}");
        let mut params = CertificateParams::new(sans).map_err(pki_err(&what))?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, common_name, &[], &what)
    }

    /// A client certificate for user `common_name` in `groups` (Kubernetes reads the
    /// organisations as groups: `system:masters` is the admin group).
    pub fn client(&self, common_name: &str, groups: &[&str]) -> Result<Issued, PkiError> {
        let what = format!("client certificate {common_name}");
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err(&what))?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, common_name, groups, &what)
    }

    fn issue(
        &self,
        mut params: CertificateParams,
        common_name: &str,
        groups: &[&str],
        what: &str,
    ) -> Result<Issued, PkiError> {
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        for group in groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *group);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().map_err(pki_err(what))?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(pki_err(what))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A fresh ECDSA P-256 key pair for signing tokens.
pub fn signing_key() -> Result<SigningKey, PkiError> {
    let key = KeyPair::generate().map_err(pki_err("signing key"))?;
    Ok(SigningKey {
        private_pem: key.serialize_pem(),
        public_pem: key.public_key_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn der(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .expect("one certificate")
            .unwrap()
    }

    fn verifier(ca: &Ca) -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(ca.cert_pem())).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap()
    }

    #[test]
    fn serving_certificates_verify_for_their_names_only() {
        let ca = Ca::new("test CA").unwrap();
        let issued = ca
            .serving("api", &["192.0.2.1", "127.0.0.1", "kubernetes.default.svc"])
            .unwrap();
        let trusting = verifier(&ca);
        let cert = der(&issued.cert_pem);
        let now = rustls::pki_types::UnixTime::now();
        let cases = [
            ("192.0.2.1", true),
            ("127.0.0.1", true),
            ("kubernetes.default.svc", true),
            ("192.0.2.2", false),
            ("example.org", false),
        ];
        for (name, ok) in cases {
            let server = rustls::pki_types::ServerName::try_from(name).unwrap();
            let result = trusting.verify_server_cert(&cert, &[], &server, &[], now);
            assert_eq!(result.is_ok(), ok, "{name}: {result:?}");
        }
        let other = Ca::new("other CA").unwrap();
        let server = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        assert!(verifier(&other)
            .verify_server_cert(&cert, &[], &server, &[], now)
            .is_err());
    }

    #[test]
    fn keys_are_pem_and_never_debug_printed() {
        let ca = Ca::new("test CA").unwrap();
        let client = ca.client("admin", &["system:masters"]).unwrap();
        assert!(client.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(client.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let printed = format!("{client:?} {ca:?}");
        assert!(!printed.contains(&client.key_pem), "{printed}");
        let signing = signing_key().unwrap();
        assert!(signing.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    }
}
