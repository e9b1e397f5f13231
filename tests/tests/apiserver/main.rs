//! The Kubernetes API emulator against real clients: kube-rs for each API behaviour, and
//! the real `kubectl` binary. Every test runs its own in-process server on 127.0.0.1:0
//! with a fresh state directory, bounded by a timeout.

mod support;

mod admission;
mod apply;
mod crud;
mod discovery;
mod gc;
mod kubectl;
mod list_watch;
mod patch;
mod persistence;
mod selectors;
mod status;
