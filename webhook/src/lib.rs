//! kube-encrypt's validating admission webhook and EncryptionConfig status controller
//! (SPEC §2 status, §3 rules and webhook).
//!
//! ```text
//!  API server ──HTTPS──► server (rustls, hyper; limits) ──► admission ──► kube_encrypt_api::rules
//!                              │                               │    ▲           ▲
//!                              │ /healthz /readyz /metrics     │    │ policy    │ cluster snapshot
//!                              ▼                               ▼    │ (file,    │ (caches: EncryptionConfig,
//!                           metrics                      AdmissionReview  reload) │  IPPool reflectors)
//!
//!  Lease (leader) ──► status::controller: Nodes + NodeEncryptions ──► status::aggregate
//!                                                   ──► EncryptionConfig/status (merge patch, on change)
//!
//!  tls: CertStore ◄── files (reloaded) | self-signed CA (Secret) ──► ValidatingWebhookConfiguration caBundle
//! ```
//!
//! `main` parses [`args::Args`] into one validated [`args::Config`] and calls [`run::run`].

pub mod admission;
pub mod args;
pub mod caches;
pub mod cluster;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod run;
pub mod server;
pub mod status;
pub mod tls;
pub mod watched;

/// Field manager of every write the webhook makes.
pub const FIELD_MANAGER: &str = "kube-encrypt-webhook";
