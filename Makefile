# kube-encrypt — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test bench soak deps build crds manifests krew fmt lint

## demo: (root) a 3-node dual-stack lab in network namespaces, encryption enabled with
## kubectl, node status and the flow matrix, then teardown (also on failure or Ctrl-C)
demo: deps
	$(CARGO) build -p kube-encrypt-tests -p kube-encrypt-agent -p kube-encrypt-webhook -p kubectl-encrypt
	$(CARGO) run -q -p kube-encrypt-tests --bin kube-encrypt-lab -- demo

## test: install what is missing (scripts/install-deps.sh), then run every test: unit tests and
## the API suites (each against the emulator and a real kube-apiserver) in parallel, then the
## root tests (network namespaces, real WireGuard) and the lab end-to-end tests one at a time,
## so their timing is not at the mercy of the parallel phase; last, every benchmark once at a
## tiny size (`cargo test --bench`: it still works; its numbers mean nothing)
SERIAL_TESTS := binary(lab) | binary(dataplane)
TINY_BENCHES := --bench apiserver --bench plugin --bench webhook --bench agent_scale \
	--bench mesh_throughput --bench convergence
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --doc
	@status=0; \
	$(CARGO) nextest run --workspace --no-fail-fast -E 'not ($(SERIAL_TESTS))' || status=1; \
	$(CARGO) nextest run --workspace --no-fail-fast -E '$(SERIAL_TESTS)' --test-threads 1 || status=1; \
	$(CARGO) test -q -p kube-encrypt-api --bench planner || status=1; \
	$(CARGO) test -q -p kube-encrypt-tests --no-fail-fast $(TINY_BENCHES) || status=1; \
	exit $$status

## bench: (root for the dataplane and agent benches) every benchmark BENCH_RUNS times (3), the
## median, spread, target, same-run baseline, ratio and verdict of each figure in
## target/bench/report.md and report.json, plots as SVG (scripts/bench.sh; BENCH_ONLY=a,b selects)
bench:
	./scripts/bench.sh

## soak: (root) the 3-node dual-stack lab under node churn, config and pool changes, agent and
## API-server restarts for SOAK_MINUTES (30); RSS/CPU of agents and webhook over time, every
## ERROR/WARN logged, the flow matrix at the end, in target/bench/soak.md, soak.json, soak-rss.svg
## (scripts/soak.sh)
SOAK_MINUTES ?= 30
soak:
	SOAK_MINUTES=$(SOAK_MINUTES) ./scripts/soak.sh

## deps: install what the tests and the lab need: Debian packages, kubectl, cargo-nextest,
## and the real control plane built from Go modules (idempotent; scripts/install-deps.sh)
deps:
	@./scripts/install-deps.sh

build:
	$(CARGO) build --workspace

## crds: regenerate manifests/crds from the Rust types (and the Helm chart's copies)
crds:
	$(CARGO) run -q -p kube-encrypt-api --bin crdgen -- --out manifests/crds
	cp manifests/crds/encryptionconfigs.yaml manifests/crds/ippools.yaml manifests/crds/nodeencryptions.yaml charts/kube-encrypt/crds/

## manifests: render the kustomize base into the plugin's embedded install manifests
manifests:
	./scripts/render-manifests.sh > cmd/src/install/manifests.yaml

## krew: build the release archive of the plugin and write krew/encrypt.yaml with its sha256
krew:
	./scripts/krew-release.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
