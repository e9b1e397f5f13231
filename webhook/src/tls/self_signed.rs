//! `--self-signed`: a CA kept in a Secret (so every replica serves certificates the same
//! caBundle trusts) and a serving certificate for the Service's DNS names and the extra SANs,
//! issued at start and again every day.
//!
//! The first replica to start creates the Secret (`kubernetes.io/tls`: `tls.crt`, `tls.key`);
//! a replica losing that race reads the winner's. The CA lives 10 years, serving certificates
//! 90 days.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::sign::CertifiedKey;

use super::{certified_key, CertError, CertStore};

/// Common name of the CA (also what makes its issuer name rebuildable from the key alone).
const CA_NAME: &str = "kube-encrypt-webhook CA";
const CA_VALIDITY: time::Duration = time::Duration::days(3650);
const LEAF_VALIDITY: time::Duration = time::Duration::days(90);
/// Serving certificates are re-issued this often, long before they expire.
pub const REISSUE_EVERY: Duration = Duration::from_secs(24 * 3600);
/// Clock skew tolerated between this replica and its clients.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// Why the CA or a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the Secret {0} is not a CA this webhook made: it lacks {1}; delete it to start over")]
    NotACa(String, &'static str),
    #[error(transparent)]
    Serve(#[from] CertError),
    #[error("{operation} the CA Secret {name}: {source}")]
    Api {
        operation: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// A CA that issues serving certificates.
pub struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

/// A serving certificate, with the PEM of its chain and key (as files would hold them).
#[derive(Debug)]
pub struct Issued {
    pub key: CertifiedKey,
    pub cert_pem: String,
    pub key_pem: String,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl Authority {
    /// A new CA with a new key.
    pub fn generate() -> Result<Self, CaError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            cert_pem,
            issuer: Issuer::new(ca_params(), key),
        })
    }

    /// The CA from its certificate and key PEM (as kept in the Secret).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            issuer: Issuer::new(ca_params(), key),
        })
    }

    /// The CA certificate, PEM: what clients trust (the caBundle).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The caBundle value: the CA certificate's PEM (the API encodes it as base64).
    pub fn ca_bundle(&self) -> Vec<u8> {
        self.cert_pem.as_bytes().to_vec()
    }

    /// A serving certificate for `names` (DNS names or IP addresses; the first is the CN).
    pub fn issue(&self, names: &[String]) -> Result<Issued, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LEAF_VALIDITY;
        let leaf = params.signed_by(&key, &self.issuer)?;
        let cert_pem = format!("{}{}", leaf.pem(), self.cert_pem);
        let key_pem = key.serialize_pem();
        let key = certified_key(cert_pem.as_bytes(), key_pem.as_bytes())?;
        Ok(Issued {
            key,
            cert_pem,
            key_pem,
        })
    }

    fn to_secret(&self, name: &str) -> Secret {
        let data = [
            ("tls.crt", self.cert_pem.clone().into_bytes()),
            ("tls.key", self.issuer.key().serialize_pem().into_bytes()),
        ];
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(
                    [(
                        "app.kubernetes.io/name".to_owned(),
                        "kube-encrypt-webhook".to_owned(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".to_owned()),
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k.to_owned(), ByteString(v)))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn from_secret(secret: &Secret, name: &str) -> Result<Self, CaError> {
        let field = |key: &'static str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .ok_or_else(|| CaError::NotACa(name.to_owned(), key))
        };
        Self::from_pem(&field("tls.crt")?, &field("tls.key")?)
    }
}

/// The CA shared by every replica: read from the Secret `name`, or created there by the first.
pub async fn shared_authority(api: &Api<Secret>, name: &str) -> Result<Authority, CaError> {
    let api_error = |operation, source| CaError::Api {
        operation,
        name: name.to_owned(),
        source,
    };
    for _ in 0..3 {
        if let Some(secret) = api
            .get_opt(name)
            .await
            .map_err(|e| api_error("reading", e))?
        {
            tracing::info!(secret = name, "using the webhook CA from its Secret");
            return Authority::from_secret(&secret, name);
        }
        let authority = Authority::generate()?;
        match api
            .create(&PostParams::default(), &authority.to_secret(name))
            .await
        {
            Ok(_) => {
                tracing::info!(secret = name, "created the webhook CA and its Secret");
                return Ok(authority);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::info!(
                    secret = name,
                    "another replica created the CA first; reading it"
                );
            }
            Err(e) => return Err(api_error("creating", e)),
        }
    }
    Err(api_error(
        "reading",
        kube::Error::Service("the Secret kept appearing and disappearing".into()),
    ))
}

/// Re-issues the serving certificate into `store` every [`REISSUE_EVERY`], forever.
pub async fn reissue_daily(authority: Arc<Authority>, names: Vec<String>, store: Arc<CertStore>) {
    loop {
        tokio::time::sleep(REISSUE_EVERY).await;
        match authority.issue(&names) {
            Ok(issued) => {
                store.replace(issued.key);
                tracing::info!("serving certificate re-issued");
            }
            Err(e) => {
                tracing::error!(error = %e, "re-issuing the serving certificate failed; the current one stays in use")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_rebuilt_from_its_pem_issues_certificates_the_original_trusts() {
        let ca = Authority::generate().unwrap();
        let key_pem = ca.issuer.key().serialize_pem();
        let again = Authority::from_pem(ca.cert_pem(), &key_pem).unwrap();
        let names = vec!["wh.ns.svc".to_owned(), "192.0.2.1".to_owned()];
        let issued = again.issue(&names).unwrap();
        assert!(
            issued.cert_pem.ends_with(ca.cert_pem()),
            "chain ends with the CA"
        );
        assert_eq!(issued.key.cert.len(), 2);
        verify(ca.cert_pem(), &issued, "wh.ns.svc");
        verify(ca.cert_pem(), &issued, "192.0.2.1");
    }

    #[test]
    fn secret_round_trip_and_refusal() {
        let ca = Authority::generate().unwrap();
        let secret = ca.to_secret("ca");
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        let back = Authority::from_secret(&secret, "ca").unwrap();
        verify(
            ca.cert_pem(),
            &back.issue(&["a.example".into()]).unwrap(),
            "a.example",
        );
        let mut broken = secret.clone();
        broken.data.as_mut().unwrap().remove("tls.key");
        let err = Authority::from_secret(&broken, "ca")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lacks tls.key"), "{err}");
    }

    /// Checks with webpki (through rustls) that `issued` is valid for `name` under `ca_pem`.
    fn verify(ca_pem: &str, issued: &Issued, name: &str) {
        use rustls::client::danger::ServerCertVerifier;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            super::super::provider(),
        )
        .build()
        .unwrap();
        let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        verifier
            .verify_server_cert(
                &issued.key.cert[0],
                &issued.key.cert[1..],
                &server_name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
