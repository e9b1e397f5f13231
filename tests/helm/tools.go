//go:build tools

// Package helm pins Helm, built by scripts/build-helm.sh to lint and render the chart in
// charts/kube-encrypt (and prove it renders the same objects as the kustomize base).
// Nothing here is product code.
package helm

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
