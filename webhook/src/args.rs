//! Command line and environment of the webhook, parsed once into one validated [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, ValueEnum};

/// kube-encrypt admission webhook: validates EncryptionConfig and IPPool changes against the
/// shared rules and the policy file, and keeps `EncryptionConfig.status` up to date.
#[derive(Debug, Clone, Parser)]
#[command(name = "kube-encrypt-webhook", version, about)]
pub struct Args {
    /// Address of the HTTPS server (`/validate`, `/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Policy file (YAML: per rule `deny`, `warn` or `off`, exempt users and groups), reloaded
    /// on change; the built-in defaults when absent.
    #[arg(long, env = "WEBHOOK_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,

    /// Kubeconfig file; in-cluster configuration when absent.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Most connections served at once; more wait in the listen backlog.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone, ClapArgs)]
pub struct TlsArgs {
    /// PEM certificate chain (such as a cert-manager Secret's `tls.crt`), reloaded on change.
    #[arg(long, env = "WEBHOOK_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key matching `--tls-cert-file`, reloaded on change.
    #[arg(long, env = "WEBHOOK_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Create a CA (kept in the Secret `--ca-secret`, shared by every replica) and a serving
    /// certificate for the Service's DNS names, and write the CA into the caBundle of every
    /// webhook of `--webhook-configuration`.
    #[arg(long, env = "WEBHOOK_SELF_SIGNED")]
    pub self_signed: bool,

    /// Extra DNS name or IP address for the self-signed serving certificate (repeatable).
    #[arg(long = "self-signed-san", value_name = "NAME_OR_IP")]
    pub self_signed_sans: Vec<String>,

    /// Secret (in `--namespace`) holding the self-signed CA.
    #[arg(
        long,
        env = "WEBHOOK_CA_SECRET",
        default_value = "kube-encrypt-webhook-ca"
    )]
    pub ca_secret: String,

    /// ValidatingWebhookConfiguration whose caBundle `--self-signed` keeps up to date.
    #[arg(
        long,
        env = "WEBHOOK_CONFIGURATION",
        default_value = "kube-encrypt-webhook"
    )]
    pub webhook_configuration: String,
}

/// Who this replica is and where it lives.
#[derive(Debug, Clone, ClapArgs)]
pub struct IdentityArgs {
    /// Name of the webhook's Service (for the self-signed certificate's DNS names).
    #[arg(
        long,
        env = "WEBHOOK_SERVICE_NAME",
        default_value = "kube-encrypt-webhook"
    )]
    pub service_name: String,

    /// Namespace of the Service, the Lease and the CA Secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kube-encrypt")]
    pub namespace: String,

    /// This replica's identity in the Lease (downward API `metadata.name`); the host name
    /// when absent.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Lease (in `--namespace`) that elects the one replica writing `EncryptionConfig.status`.
    #[arg(
        long,
        env = "WEBHOOK_LEASE_NAME",
        default_value = "kube-encrypt-webhook"
    )]
    pub lease_name: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The webhook's settings after validation; shared read-only by every part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls: TlsSource,
    pub service: ServiceName,
    pub identity: String,
    pub lease_name: String,
    pub policy_file: Option<PathBuf>,
    pub kubeconfig: Option<PathBuf>,
    pub limits: Limits,
}

/// The serving certificate's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// Certificate and key files, reloaded on change.
    Files { cert: PathBuf, key: PathBuf },
    /// A CA shared through a Secret, a serving certificate made at start.
    SelfSigned(SelfSigned),
}

/// What `--self-signed` creates and patches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    /// Extra names and addresses beyond the Service's DNS names.
    pub extra_sans: Vec<String>,
    pub ca_secret: String,
    pub webhook_configuration: String,
}

/// The webhook's Service, whose DNS names the self-signed certificate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName {
    pub name: String,
    pub namespace: String,
}

impl ServiceName {
    /// `<name>`, `<name>.<ns>`, `<name>.<ns>.svc`, `<name>.<ns>.svc.cluster.local`.
    pub fn dns_names(&self) -> Vec<String> {
        let (name, ns) = (&self.name, &self.namespace);
        vec![
            name.clone(),
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}.svc.cluster.local"),
        ]
    }
}

/// Bounds on what one client can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    /// Largest request body accepted (an AdmissionReview carries object and oldObject).
    pub max_body_bytes: usize,
    /// Time to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time to send a request's headers, and the longest a kept-alive connection may idle.
    pub idle_timeout: Duration,
    /// Time to send a request's body once its headers arrived.
    pub body_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_body_bytes: 4 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why the arguments were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("no serving certificate: pass --tls-cert-file and --tls-key-file (such as a cert-manager Secret), or --self-signed")]
    NoCertificate,
    #[error("--self-signed and --tls-cert-file/--tls-key-file exclude each other; pick one")]
    TwoCertificateSources,
    #[error("--{given} needs --{missing} too")]
    HalfAPair {
        given: &'static str,
        missing: &'static str,
    },
    #[error("--self-signed-san is only used with --self-signed")]
    SansWithoutSelfSigned,
    #[error("--{flag} is empty; give it a name")]
    Empty { flag: &'static str },
    #[error("--self-signed-san {0:?} is neither a DNS name nor an IP address")]
    BadSan(String),
    #[error("--max-connections must be at least 1")]
    NoConnections,
    #[error("no --pod-name (POD_NAME) and the host name cannot be read; set --pod-name")]
    NoIdentity,
}

impl Args {
    /// Validates the arguments; `hostname` stands in for a missing `--pod-name`.
    pub fn into_config(self, hostname: Option<String>) -> Result<Config, ArgsError> {
        let tls = self.tls.into_source()?;
        let identity = self.identity;
        let service = ServiceName {
            name: non_empty("service-name", identity.service_name)?,
            namespace: non_empty("namespace", identity.namespace)?,
        };
        let pod = identity.pod_name.or(hostname).map(|s| s.trim().to_owned());
        let identity_name = pod.filter(|s| !s.is_empty()).ok_or(ArgsError::NoIdentity)?;
        if self.max_connections == 0 {
            return Err(ArgsError::NoConnections);
        }
        Ok(Config {
            listen: self.listen,
            tls,
            service,
            identity: identity_name,
            lease_name: non_empty("lease-name", identity.lease_name)?,
            policy_file: self.policy_file.filter(|p| !p.as_os_str().is_empty()),
            kubeconfig: self.kubeconfig.filter(|p| !p.as_os_str().is_empty()),
            limits: Limits {
                max_connections: self.max_connections,
                ..Limits::default()
            },
        })
    }
}

impl TlsArgs {
    fn into_source(self) -> Result<TlsSource, ArgsError> {
        let files = (self.tls_cert_file, self.tls_key_file);
        match (self.self_signed, files) {
            (true, (None, None)) => Ok(TlsSource::SelfSigned(SelfSigned {
                extra_sans: checked_sans(self.self_signed_sans)?,
                ca_secret: non_empty("ca-secret", self.ca_secret)?,
                webhook_configuration: non_empty(
                    "webhook-configuration",
                    self.webhook_configuration,
                )?,
            })),
            (true, _) => Err(ArgsError::TwoCertificateSources),
            (false, _) if !self.self_signed_sans.is_empty() => {
                Err(ArgsError::SansWithoutSelfSigned)
            }
            (false, (Some(cert), Some(key))) => Ok(TlsSource::Files { cert, key }),
            (false, (Some(_), None)) => Err(ArgsError::HalfAPair {
                given: "tls-cert-file",
                missing: "tls-key-file",
            }),
            (false, (None, Some(_))) => Err(ArgsError::HalfAPair {
                given: "tls-key-file",
                missing: "tls-cert-file",
            }),
            (false, (None, None)) => Err(ArgsError::NoCertificate),
        }
    }
}

fn non_empty(flag: &'static str, value: String) -> Result<String, ArgsError> {
    let value = value.trim().to_owned();
    if value.is_empty() {
        return Err(ArgsError::Empty { flag });
    }
    Ok(value)
}

/// Each SAN is an IP address or a DNS name (labels of letters, digits and `-`, `*.` allowed
/// first).
fn checked_sans(sans: Vec<String>) -> Result<Vec<String>, ArgsError> {
    sans.into_iter()
        .map(|san| {
            let san = san.trim().to_owned();
            let ok = san.parse::<std::net::IpAddr>().is_ok() || is_dns_name(&san);
            ok.then_some(san.clone()).ok_or(ArgsError::BadSan(san))
        })
        .collect()
}

fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["kube-encrypt-webhook"];
        argv.extend_from_slice(extra);
        let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        args.into_config(Some("host-a".into()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = parse(&["--self-signed"]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(
            config.service,
            ServiceName {
                name: "kube-encrypt-webhook".into(),
                namespace: "kube-encrypt".into()
            }
        );
        assert_eq!(config.identity, "host-a", "host name without --pod-name");
        assert_eq!(config.lease_name, "kube-encrypt-webhook");
        assert_eq!(config.policy_file, None);
        assert_eq!(
            config.tls,
            TlsSource::SelfSigned(SelfSigned {
                extra_sans: vec![],
                ca_secret: "kube-encrypt-webhook-ca".into(),
                webhook_configuration: "kube-encrypt-webhook".into(),
            })
        );
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn certificate_sources() {
        let files = parse(&["--tls-cert-file", "/c.pem", "--tls-key-file", "/k.pem"]).unwrap();
        assert_eq!(
            files.tls,
            TlsSource::Files {
                cert: "/c.pem".into(),
                key: "/k.pem".into()
            }
        );
        let lab = parse(&[
            "--self-signed",
            "--self-signed-san",
            "192.0.2.1",
            "--self-signed-san",
            "webhook.example",
            "--pod-name",
            "pod-1",
        ])
        .unwrap();
        let TlsSource::SelfSigned(s) = lab.tls else {
            panic!("self-signed expected")
        };
        assert_eq!(s.extra_sans, ["192.0.2.1", "webhook.example"]);
        assert_eq!(lab.identity, "pod-1");
    }

    #[test]
    fn refuses_bad_values_with_the_reason() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "--self-signed"),
            (&["--tls-cert-file", "/c"], "needs --tls-key-file"),
            (&["--tls-key-file", "/k"], "needs --tls-cert-file"),
            (
                &["--self-signed", "--tls-cert-file", "/c"],
                "exclude each other",
            ),
            (
                &[
                    "--tls-cert-file",
                    "/c",
                    "--tls-key-file",
                    "/k",
                    "--self-signed-san",
                    "a",
                ],
                "only used with --self-signed",
            ),
            (
                &["--self-signed", "--self-signed-san", "a b"],
                "neither a DNS name",
            ),
            (
                &["--self-signed", "--self-signed-san=-x.example"],
                "neither a DNS name",
            ),
            (
                &["--self-signed", "--namespace", " "],
                "--namespace is empty",
            ),
            (
                &["--self-signed", "--lease-name", ""],
                "--lease-name is empty",
            ),
            (&["--self-signed", "--max-connections", "0"], "at least 1"),
            (&["--self-signed", "--listen", "nowhere"], "invalid value"),
            (&["--self-signed", "--log-format", "xml"], "invalid value"),
        ];
        for (extra, reason) in cases {
            let err = parse(extra).unwrap_err();
            assert!(err.contains(reason), "{extra:?}: {err}");
        }
    }

    #[test]
    fn identity_is_required() {
        let args = Args::try_parse_from(["x", "--self-signed"]).unwrap();
        assert_eq!(args.into_config(None), Err(ArgsError::NoIdentity));
    }

    #[test]
    fn service_dns_names() {
        let service = ServiceName {
            name: "wh".into(),
            namespace: "ns".into(),
        };
        assert_eq!(
            service.dns_names(),
            ["wh", "wh.ns", "wh.ns.svc", "wh.ns.svc.cluster.local"]
        );
    }
}
