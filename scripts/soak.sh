#!/usr/bin/env bash
# The soak run: a 3-node dual-stack lab (real kube-apiserver when built, the admission
# webhook) with encryption on, then for SOAK_MINUTES fake Nodes added and removed,
# EncryptionConfig and IPPool changes, agents killed and the API server restarted, each at a
# bounded rate, while RSS and CPU of every agent and of the webhook are sampled from /proc.
# At the end the cluster settles and the flow matrix runs. `make soak` runs it (root); it is
# not part of `make test` or `make bench`.
#
#   SOAK_MINUTES=30     minutes of churn (fractions allowed)
#   SOAK_SEED=N         seed of the node churn (default: from the clock; recorded)
#   CARGO=cargo         the cargo to use
#
# Output: target/bench/soak.md, soak.json, soak-rss.svg and soak-logs/ (the agents' and the
# webhook's logs). RSS growth over the target (5 % after warm-up) is reported as MISSED; the
# script exits non-zero when a flow is not as expected, the cluster does not converge, an
# injected fault could not be injected, or the harness fails.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
CARGO="${CARGO:-cargo}"
minutes="${SOAK_MINUTES:-30}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="$target_dir/bench"

case "$minutes" in
  '' | *[!0-9.]* | *.*.* | .) echo "SOAK_MINUTES=$minutes: give a number of minutes, such as 30 or 2.5" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "the soak needs root (network namespaces, WireGuard): run sudo make soak" >&2
  exit 2
fi

# The lab runs the debug binaries of the agent, the webhook and the plugin, as `make demo` does.
echo "== building the lab, the agent, the webhook and the soak harness"
"$CARGO" build -p kube-encrypt-tests -p kube-encrypt-agent -p kube-encrypt-webhook -p kubectl-encrypt --bins

mkdir -p "$out"
echo "== soak for $minutes minutes (report: $out/soak.md)"
SOAK_MINUTES="$minutes" "$target_dir/debug/soak" --out "$out"
