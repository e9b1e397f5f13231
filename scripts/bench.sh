#!/usr/bin/env bash
# Runs every benchmark several times and aggregates the runs into one report: median, spread
# (min–max), target, the baseline measured in the same run, ratio and verdict, plus the date,
# the machine and the load around each bench. `make bench` runs it; it is not part of
# `make test`.
#
#   BENCH_RUNS=3                   runs of each bench (the median of them is reported)
#   BENCH_ONLY=webhook,plugin      only these benches (default: all below)
#   BENCH_AGENT_NODES="100 1000 5000 15000"  cluster sizes of agent_scale (each its own figure)
#   BENCH_IMPLEMENTATIONS="wireguard-go boringtun"  userspace WireGuard of mesh_throughput;
#                                  boringtun-cli is built with `cargo install` into
#                                  target/bench-tools when missing (not measured if that fails)
#   CARGO=cargo                    the cargo to use
#
# Benches: planner webhook plugin apiserver (no root), mesh_throughput convergence agent_scale
# (root: network namespaces, WireGuard; skipped with a message when not root). Output:
# target/bench/runs/<bench>-<run>.json (one per run), target/bench/logs/, and from
# `bench-report`: target/bench/report.md, report.json, throughput.svg, agent-scale.svg.
# A missed target is reported as MISSED; a bench that fails makes the script exit non-zero
# after the report of the others. A call replaces the runs of what it measures and keeps the
# rest of target/bench/runs (other benches, sizes, implementations), so the report can gather
# several calls; remove that directory for a clean slate.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
CARGO="${CARGO:-cargo}"
runs="${BENCH_RUNS:-3}"
all="planner webhook plugin apiserver mesh_throughput convergence agent_scale"
only="${BENCH_ONLY:-$all}"
agent_nodes="${BENCH_AGENT_NODES:-100 1000 5000 15000}"
implementations="${BENCH_IMPLEMENTATIONS:-wireguard-go boringtun}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="$target_dir/bench"
run_dir="$out/runs"
log_dir="$out/logs"

case "$runs" in
  '' | *[!0-9]* | 0) echo "BENCH_RUNS=$runs: give a number of runs, at least 1" >&2; exit 2 ;;
esac
selected=()
for bench in ${only//,/ }; do
  case " $all " in
    *" $bench "*) selected+=("$bench") ;;
    *) echo "BENCH_ONLY: unknown bench '$bench' (known: $all)" >&2; exit 2 ;;
  esac
done

needs_root() {
  case "$1" in mesh_throughput | convergence | agent_scale) return 0 ;; *) return 1 ;; esac
}

skipped=()
runnable=()
for bench in "${selected[@]}"; do
  if needs_root "$bench" && [ "$(id -u)" -ne 0 ]; then
    skipped+=("$bench: needs root (network namespaces, WireGuard); run make bench as root")
  else
    runnable+=("$bench")
  fi
done

# The binaries the selected benches run: the report, the webhook, the plugin, the agent.
packages=(-p kube-encrypt-tests)
for bench in "${runnable[@]}"; do
  case "$bench" in
    webhook) packages+=(-p kube-encrypt-webhook) ;;
    plugin) packages+=(-p kubectl-encrypt) ;;
    mesh_throughput | convergence | agent_scale) packages+=(-p kube-encrypt-agent) ;;
  esac
done
echo "== building release binaries"
"$CARGO" build --release "${packages[@]}" --bins
for bench in "${runnable[@]}"; do
  if [ "$bench" = planner ]; then
    "$CARGO" bench --no-run -p kube-encrypt-api --bench planner
  else
    "$CARGO" bench --no-run -p kube-encrypt-tests --bench "$bench"
  fi
done

# boringtun, when asked for: on PATH, or built from crates.io into target/bench-tools.
tools="$target_dir/bench-tools"
export PATH="$PATH:$tools/bin"
measured_implementations=()
for implementation in $implementations; do
  case "$implementation" in
    wireguard-go) measured_implementations+=(wireguard-go) ;;
    boringtun)
      if ! command -v boringtun-cli >/dev/null 2>&1; then
        echo "== building boringtun-cli into $tools (cargo install, once)"
        if ! "$CARGO" install -q --locked --root "$tools" boringtun-cli; then
          skipped+=("mesh_throughput with boringtun: cargo install boringtun-cli failed")
          continue
        fi
      fi
      measured_implementations+=(boringtun) ;;
    *) echo "BENCH_IMPLEMENTATIONS: unknown '$implementation' (known: wireguard-go boringtun)" >&2; exit 2 ;;
  esac
done

mkdir -p "$run_dir" "$log_dir"

failed=()
run_bench() { # bench run [args...]
  local bench="$1" run="$2" log
  shift 2
  local suffix
  suffix="$(printf '%s' "$*" | tr -cd '[:alnum:]')"
  log="$log_dir/$bench${suffix:+-$suffix}-$run.log"
  local package=kube-encrypt-tests extra=()
  if [ "$bench" = planner ]; then
    package=kube-encrypt-api
    extra=(--warm-up-time 1 --measurement-time 3)
  fi
  # Runs of this bench and variant from an earlier call would mix with this call's; other
  # variants (another cluster size, implementation) stay, so a report can gather several calls
  # (`--nodes 100` is `nodes100` in the run file's name).
  if [ "$run" = 1 ]; then
    local variant
    variant="$(printf '%s' "$*" | sed -E 's/--([a-z]+) /\1/g')"
    if [ -n "$variant" ]; then
      rm -f "$run_dir/$bench"-*"$variant"-[0-9]*.json
    else
      rm -f "$run_dir/$bench"-*.json
    fi
  fi
  echo "== $bench${*:+ $*} run $run/$runs (log: $log)"
  if ! KUBE_ENCRYPT_BENCH_OUT="$run_dir" KUBE_ENCRYPT_BENCH_RUN="$run" \
    "$CARGO" bench -q -p "$package" --bench "$bench" -- "${extra[@]}" "$@" 2>&1 | tee "$log"; then
    failed+=("$bench $* run $run (see $log)")
  fi
}

for bench in "${runnable[@]}"; do
  for run in $(seq 1 "$runs"); do
    if [ "$bench" = agent_scale ]; then
      for nodes in $agent_nodes; do
        run_bench "$bench" "$run" --nodes "$nodes"
      done
    elif [ "$bench" = mesh_throughput ]; then
      for implementation in "${measured_implementations[@]}"; do
        run_bench "$bench" "$run" --implementation "$implementation"
      done
    else
      run_bench "$bench" "$run"
    fi
  done
done

report_args=(--runs "$run_dir" --out "$out")
for line in "${skipped[@]}"; do
  report_args+=(--not-measured "$line")
done
for line in "${failed[@]}"; do
  report_args+=(--not-measured "failed: $line")
done
"$target_dir/release/bench-report" "${report_args[@]}"

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
