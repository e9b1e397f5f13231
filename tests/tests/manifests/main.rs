//! The install manifests as users get them: the kustomize base in `manifests/` (and its
//! cert-manager overlay and workload-ips component), the Helm chart in `charts/kube-encrypt`,
//! the GitOps examples and the Dockerfiles — rendered with the pinned kubectl and Helm, and
//! proven on a real kube-apiserver: every object accepted, each ServiceAccount's permissions
//! exactly the expected list, the admission policy pinning an agent (with a real
//! node-bound token) to its own node, and a GitOps apply of the examples reaching Ready with
//! the webhook running as its own ServiceAccount.
//!
//! The API server tests need the real control plane (`scripts/build-control-plane.sh`); the
//! Helm tests need Helm (`scripts/build-helm.sh`). Without Go neither can be built: those
//! tests say so and run nothing.

mod dockerfiles;
mod dry_run;
mod gitops;
mod helm;
mod policy;
mod rbac;
mod render;
mod support;
