//! kube-encrypt's validating admission webhook and EncryptionConfig status controller.

pub mod admission;
pub mod args;
pub mod cluster;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod tls;
pub mod watched;

/// Field manager of every write the webhook makes.
pub const FIELD_MANAGER: &str = "kube-encrypt-webhook";
