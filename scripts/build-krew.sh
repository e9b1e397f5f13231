#!/usr/bin/env bash
# Builds krew and its manifest validator (validate-krew-manifest) from the Go module pinned in
# tests/krew (go.mod + go.sum), into a cache outside the work tree keyed on go.sum. A warm
# cache builds nothing. Used by the krew test to prove krew/encrypt.yaml with krew itself.
#
# Prints the directory holding the binaries on stdout (progress goes to stderr).
# Exit codes: 0 built or cached, 1 build failed, 3 Go is not installed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
module="$root/tests/krew"
cache_root="${KE_KREW_CACHE:-/var/cache/kube-encrypt/krew}"
binaries=(krew validate-krew-manifest)

say() { echo "build-krew: $*" >&2; }
# shellcheck source=lib/go-cache.sh
. "$root/scripts/lib/go-cache.sh"

if ! command -v go >/dev/null 2>&1; then
  say "Go is not installed: building krew to check the plugin manifest needs Go"
  exit 3
fi

# Bump when the way of building changes; go.mod and go.sum pin the sources.
recipe=1
out="$cache_root/$(go_cache_key "$recipe" "$module")"
go_cache_reuse "$out"

say "building krew and validate-krew-manifest from tests/krew into $out"
go_cache_build "$out" "$module" "-s -w" \
  sigs.k8s.io/krew/cmd/krew \
  sigs.k8s.io/krew/cmd/validate-krew-manifest
