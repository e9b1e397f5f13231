#!/usr/bin/env bash
# Builds the real Kubernetes control plane the lab runs on — etcd, kube-apiserver,
# kube-controller-manager and kubectl — from the Go modules pinned in tests/kube (go.mod +
# go.sum), into a cache outside the work tree keyed on go.sum. A warm cache builds nothing.
#
# Prints the directory holding the binaries on stdout (progress goes to stderr);
# `--print-dir` prints where they would be without building anything.
# Exit codes: 0 built or cached, 1 build failed, 3 Go is not installed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
module="$root/tests/kube"
cache_root="${KE_KUBE_CACHE:-/var/cache/kube-encrypt/control-plane}"
binaries=(etcd kube-apiserver kube-controller-manager kubectl)

say() { echo "build-control-plane: $*" >&2; }
# shellcheck source=lib/go-cache.sh
. "$root/scripts/lib/go-cache.sh"

# Bump when the way of building changes (flags, binaries); go.mod and go.sum pin the sources.
recipe=1
out="$cache_root/$(go_cache_key "$recipe" "$module")"
if [ "${1:-}" = "--print-dir" ]; then
  echo "$out"
  exit 0
fi
go_cache_reuse "$out"

if ! command -v go >/dev/null 2>&1; then
  say "Go is not installed: the lab's real control plane needs Go (>= 1.25); the lab falls back to its API emulator"
  exit 3
fi

version="$(cd "$module" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
minor="$(echo "$version" | cut -d. -f2)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# Go names the binary of go.etcd.io/etcd/server/v3 after "server".
after_build() { mv "$1/server" "$1/etcd"; }
say "building etcd, kube-apiserver, kube-controller-manager, kubectl $version from tests/kube (cold: several minutes, a few GiB of memory) into $out"
go_cache_build "$out" "$module" "$ldflags" \
  go.etcd.io/etcd/server/v3 \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl
