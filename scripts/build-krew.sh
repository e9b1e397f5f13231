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

if ! command -v go >/dev/null 2>&1; then
  say "Go is not installed: building krew to check the plugin manifest needs Go"
  exit 3
fi

# Bump when the way of building changes; go.mod and go.sum pin the sources.
recipe=1
key="$( (echo "recipe $recipe"; cat "$module/go.mod" "$module/go.sum") | sha256sum | cut -c1-16)"
out="$cache_root/$key"
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
say "building krew and validate-krew-manifest from tests/krew into $out"
start=$SECONDS
log="$tmp/build.log"
(
  cd "$module"
  GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/" \
    sigs.k8s.io/krew/cmd/krew \
    sigs.k8s.io/krew/cmd/validate-krew-manifest
) >"$log" 2>&1 || {
  say "FAILED after $((SECONDS - start)) s; the go build output follows"
  cat "$log" >&2
  exit 1
}
for b in "${binaries[@]}"; do
  [ -x "$tmp/$b" ] || { say "FAILED: $b missing after the build"; exit 1; }
done
rm -f "$log"
chmod 755 "$tmp"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
say "built in $((SECONDS - start)) s"
echo "$out"
