//go:build tools

// Package krew pins krew and its manifest validator, built by scripts/build-krew.sh to prove
// krew/encrypt.yaml with krew itself. Nothing here is product code.
package krew

import (
	_ "sigs.k8s.io/krew/cmd/krew"
	_ "sigs.k8s.io/krew/cmd/validate-krew-manifest"
)
