//go:build tools

// Package kube pins the real Kubernetes control plane the lab runs on: etcd,
// kube-apiserver, kube-controller-manager and kubectl, built from their Go modules
// by scripts/build-control-plane.sh. Nothing here is product code.
package kube

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
