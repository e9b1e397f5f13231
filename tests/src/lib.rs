//! kube-encrypt's lab: a Kubernetes API emulator, a whole cluster in network namespaces,
//! end-to-end flows and benchmarks. Test infrastructure only.

pub mod apiserver;
pub mod lab;
pub mod pki;
