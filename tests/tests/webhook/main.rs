//! kube-encrypt-webhook against the in-process Kubernetes API emulator: leader election over
//! a Lease, the status controller writing EncryptionConfig status from NodeEncryptions, and
//! the whole webhook (`run_until`, self-signed CA, caBundle) called by the emulator's
//! admission chain for real writes. Every test runs its own emulator on 127.0.0.1:0 and is
//! bounded by a timeout.

#[allow(dead_code)]
#[path = "../apiserver/support.rs"]
mod support;

mod admission;
mod fixtures;
mod kubectl;
mod leader;
mod status;
