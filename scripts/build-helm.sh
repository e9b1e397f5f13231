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

# Bump when the way of building changes; go.mod and go.sum pin the sources.
recipe=2
key="$( (echo "recipe $recipe"; cat "$module/go.mod" "$module/go.sum") | sha256sum | cut -c1-16)"
out="$cache_root/$key"
if [ "${1:-}" = "--print-dir" ]; then
  echo "$out"
  exit 0
fi
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi

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

mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
say "building helm $version from tests/helm (cold: a few minutes) into $out"
start=$SECONDS
log="$tmp/build.log"
(
  cd "$module"
  # -mod=readonly: go.sum is the pin; a build never edits it.
  GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
    helm.sh/helm/v3/cmd/helm
) >"$log" 2>&1 || {
  say "FAILED after $((SECONDS - start)) s; the go build output follows"
  cat "$log" >&2
  exit 1
}
[ -x "$tmp/helm" ] || { say "FAILED: helm missing after the build"; exit 1; }
rm -f "$log"
chmod 755 "$tmp"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
say "built in $((SECONDS - start)) s"
echo "$out"
