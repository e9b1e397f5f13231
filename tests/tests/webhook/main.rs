//! kube-encrypt-webhook against a real kube-apiserver and the API emulator: leader election over
//! a Lease, the status controller writing EncryptionConfig status from NodeEncryptions, and
//! the whole webhook (`run_until`, self-signed CA, caBundle) called by the API server's
//! admission chain for real writes. Every test runs its own API server on loopback and is
//! bounded by a timeout.

#[allow(dead_code, unused_imports)]
#[path = "../apiserver/support.rs"]
mod support;

mod admission;
mod fixtures;
mod kubectl;
mod leader;
mod status;
