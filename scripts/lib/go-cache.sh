# shellcheck shell=bash
# Shared by scripts/build-*.sh: Go tools built from a module pinned in the repo (go.mod +
# go.sum) into a cache outside the work tree, one directory per recipe and go.sum, filled
# atomically (a `.complete` marker; a failed or interrupted build leaves nothing behind).
# The caller defines `say` and the array `binaries`, and may define `after_build DIR`.

# The cache key of `module` built by recipe number `recipe`.
go_cache_key() {
  local recipe=$1 module=$2
  (echo "recipe $recipe"; cat "$module/go.mod" "$module/go.sum") | sha256sum | cut -c1-16
}

# Prints `out` and exits when it holds a complete build.
go_cache_reuse() {
  local out=$1
  if [ -f "$out/.complete" ]; then
    echo "$out"
    exit 0
  fi
}

# go_cache_build OUT MODULE LDFLAGS PACKAGE...: builds the packages of MODULE into OUT and
# prints OUT; on failure shows the go build output and exits 1.
go_cache_build() {
  local out=$1 module=$2 ldflags=$3
  shift 3
  local cache_root start log
  cache_root="$(dirname "$out")"
  mkdir -p "$cache_root"
  tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  start=$SECONDS
  log="$tmp/build.log"
  (
    cd "$module"
    # -mod=readonly: go.sum is the pin; a build never edits it.
    GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "$@"
  ) >"$log" 2>&1 || {
    say "FAILED after $((SECONDS - start)) s; the go build output follows"
    cat "$log" >&2
    exit 1
  }
  if declare -F after_build >/dev/null; then
    after_build "$tmp"
  fi
  local b
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
}
