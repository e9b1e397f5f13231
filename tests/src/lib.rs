//! kube-encrypt's lab: a whole cluster in network namespaces on the real Kubernetes control
//! plane (or a Kubernetes API emulator), end-to-end flows and benchmarks. Test infrastructure
//! only.

pub mod apiserver;
pub mod bench_report;
pub mod kube_apiserver;
pub mod lab;
pub mod pki;
pub mod procfs;
pub mod soak;
pub mod test_cluster;
