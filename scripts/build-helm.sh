#!/usr/bin/env bash
# Builds Helm from the Go module pinned in tests/helm (go.mod + go.sum), into a cache outside
# the work tree keyed on go.sum. A warm cache builds nothing. Used by the manifests tests to
# lint and render charts/kube-encrypt and compare it with the kustomize base.
#
# Prints the directory holding the binary on stdout (progress goes to stderr);
# `--print-dir` prints where it would be without building anything.
# Exit codes: 0 built or cached, 1 build failed, 3 Go is not installed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
module="$root/tests/helm"
cache_root="${KE_HELM_CACHE:-/var/cache/kube-encrypt/helm}"

say() { echo "build-helm: $*" >&2; }
binaries=(helm)
# shellcheck source=lib/go-cache.sh
. "$root/scripts/lib/go-cache.sh"

# Bump when the way of building changes; go.mod and go.sum pin the sources.
recipe=2
out="$cache_root/$(go_cache_key "$recipe" "$module")"
if [ "${1:-}" = "--print-dir" ]; then
  echo "$out"
  exit 0
fi
go_cache_reuse "$out"

if ! command -v go >/dev/null 2>&1; then
  say "Go is not installed: building Helm to check the chart needs Go (>= 1.25)"
  exit 3
fi

version="$(cd "$module" && go list -m -f '{{.Version}}' helm.sh/helm/v3)"
# The Kubernetes version `helm template` and `helm lint` assume without a cluster, from the
# client-go it was built with (v0.34.x is Kubernetes 1.34), as Helm's own Makefile sets it.
client_go="$(cd "$module" && go list -m -f '{{.Version}}' k8s.io/client-go)"
k8s_minor="$(echo "$client_go" | cut -d. -f2)"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

say "building helm $version from tests/helm (cold: a few minutes) into $out"
go_cache_build "$out" "$module" "$ldflags" helm.sh/helm/v3/cmd/helm
