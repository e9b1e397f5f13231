//! `kubectl encrypt` as a user runs it: the real binary against a real kube-apiserver and the
//! API emulator (loopback, one server per test), with exit codes, colour rules, a terminal session, the
//! enable/disable flows, GitOps refusals, conflicts, install/uninstall, completion through
//! kubectl, and krew installing the plugin from its manifest.
//!
//! The binaries come from the workspace build: `cargo build -p kubectl-encrypt` first (make
//! test builds the whole workspace before running tests).

mod plugin {
    pub mod support;

    pub mod completion;
    pub mod enable;
    pub mod errors;
    pub mod install;
    pub mod krew;
    pub mod status;
    pub mod terminal;
}
