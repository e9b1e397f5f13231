//! A Kubernetes API emulator speaking the real HTTP API to real clients (kube-rs, kubectl).
//! Test infrastructure only; production runs on real clusters.
