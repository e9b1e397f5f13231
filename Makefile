# kube-encrypt — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test deps build crds manifests krew fmt lint

## demo: (root) a 3-node dual-stack lab in network namespaces, encryption enabled with
## kubectl, node status and the flow matrix, then teardown (also on failure or Ctrl-C)
demo: deps
	$(CARGO) build -p kube-encrypt-tests -p kube-encrypt-agent
	$(CARGO) run -q -p kube-encrypt-tests --bin kube-encrypt-lab -- demo

## test: install missing system packages, then run every test (unit, root/netns, lab e2e)
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --doc
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## deps: install the Debian packages the tests and the lab need (idempotent)
deps:
	@./scripts/install-deps.sh

build:
	$(CARGO) build --workspace

## crds: regenerate manifests/crds from the Rust types
crds:
	$(CARGO) run -q -p kube-encrypt-api --bin crdgen -- --out manifests/crds

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
