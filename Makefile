# kuryr-dpdk — see README.md. Every target installs or builds what it needs.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

BIN      ?= bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/kuryr-dpdk/kuryr-dpdk/internal/version.Version=$(VERSION)
# Build tags of the binaries: internal/imagebuild's BuildTags says why (test/arch checks they agree).
GOTAGS   := grpcnotrace
BINARIES := kuryr-controller kuryr-daemon kuryr-cni kuryrctl kuryr-cloudsim
IMAGE      ?= kuryr-dpdk/kuryr-dpdk:dev
DEMO_IMAGE ?= kuryr-dpdk/demo:dev
GO       ?= go

.PHONY: build
build: ## build the binaries into ./bin
	@mkdir -p $(BIN)
	@for b in $(BINARIES); do \
		echo "go build $$b"; \
		CGO_ENABLED=0 $(GO) build -trimpath -tags '$(GOTAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/$$b ./cmd/$$b; \
	done

.PHONY: image
image: build ## the kuryr-dpdk and demo images as OCI layout tarballs in ./bin/images (no Docker); prints their digests
	@BIN='$(BIN)' IMAGE='$(IMAGE)' DEMO_IMAGE='$(DEMO_IMAGE)' VERSION='$(VERSION)' GO='$(GO)' hack/image.sh

.PHONY: kube-bins
kube-bins: ## build etcd and the Kubernetes control plane into the cache (slow once, then seconds)
	@hack/build-kube-bins.sh >/dev/null

.PHONY: node-bins
node-bins: ## build containerd, ctr, crictl, kubelet, kubectl into the cache (runc from Debian); after kube-bins
	@hack/build-kube-bins.sh >/dev/null
	@hack/build-node-bins.sh >/dev/null

.PHONY: multus-bins
multus-bins: ## build Multus v4.2.3 (thin plugin, thin_entrypoint) into the cache, for the real-Multus test (docs/multus.md)
	@hack/build-multus.sh >/dev/null

.PHONY: deps
deps: ## install the Debian packages the tests need (root)
	@hack/install-deps.sh

# make test: unit tests, root-only tests (network namespaces) and tests against
# a real kube-apiserver. Root-only tests skip loudly when not root; CI runs as
# root with KURYR_TEST_STRICT=1, where skipping them is a failure.
.PHONY: test
test: deps build ## run every test (unit, root/netns, real kube-apiserver, real Neutron, real Multus, QEMU node VM)
	@assets="$$(hack/build-kube-bins.sh | tail -n1)"; \
	nodebins="$$(hack/build-node-bins.sh | tail -n1)"; \
	multus="$$(hack/build-multus.sh | tail -n1)"; \
	guest="$$(hack/vm/build-guest.sh | tail -n1)"; \
	echo "go test ./... (control plane from $$assets, real nodes from $$nodebins, Multus from $$multus, node VM guest $$guest)"; \
	export KUBEBUILDER_ASSETS="$$assets" KURYR_NODE_BINS="$$nodebins" KURYR_MULTUS_BINS="$$multus" KURYR_VM_GUEST="$$guest" KURYR_AIO_BIN_DIR="$(abspath $(BIN))"; \
	failed=""; \
	$(GO) test -count=1 -timeout 30m $(TESTFLAGS) $$($(GO) list ./... | grep -v -e /test/realnode$$ -e /test/e2e$$ -e /test/vmpod -e /test/soak$$) || failed="$$failed ./..."; \
	echo "go test -v ./test/realnode ./test/e2e ./test/soak (real containerd and kubelet calling kuryr-cni, directly and through real Multus, the short fault soak and the API server outage of KURYR_APISERVER_OUTAGE, 3m; verbose, so the log shows the calls and the audit tables; one at a time)"; \
	$(GO) test -p 1 -count=1 -timeout 30m -v $(TESTFLAGS) ./test/realnode ./test/e2e ./test/soak || failed="$$failed ./test/realnode+e2e+soak"; \
	echo "go test -v ./test/vmpod/... (kubelet and containerd in the node VM: a DPDK container, DRA claims, and nested-vlan against real Neutron; verbose, so the log shows the frames counted)"; \
	$(GO) test -count=1 -timeout 10m -p 1 -v $(TESTFLAGS) ./test/vmpod/... || failed="$$failed ./test/vmpod/..."; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: every package passed"

# make soak: the fault soak (test/soak, docs/all-in-one.md) for KURYR_SOAK_DURATION
# (default 30m); make test runs it for its short default (2m).
KURYR_SOAK_DURATION ?= 30m

.PHONY: soak
soak: build ## the fault soak on the all-in-one (root) for KURYR_SOAK_DURATION (30m): faults, kills, a node deleted; a table of leftovers per layer
	@$(AIO_ROOT_CHECK)
	@assets="$$(hack/build-kube-bins.sh | tail -n1)"; \
	echo "go test -v ./test/soak for $(KURYR_SOAK_DURATION) (control plane from $$assets)"; \
	KUBEBUILDER_ASSETS="$$assets" KURYR_AIO_BIN_DIR="$(abspath $(BIN))" KURYR_SOAK_DURATION="$(KURYR_SOAK_DURATION)" KURYR_TEST_STRICT=1 \
		$(GO) test -count=1 -timeout 0 -v -run '^TestSoak$$' $(TESTFLAGS) ./test/soak

.PHONY: test-vm
test-vm: ## only the real node VM tests (QEMU guest: hot-plug, bind, testpmd; kubelet and a DPDK container)
	hack/vm/test.sh

.PHONY: bench
bench: ## the all-in-one bench (root): N=1,10,100 pods, zero and realistic cloud latency; KURYR_BENCH_SIZES/PROFILES/DPDK_POOL/POOLS; results/
	@hack/bench/aio.sh

.PHONY: bench-neutron
bench-neutron: ## kuryr-controller against a real neutron-server on MariaDB: N=1,10,50 pods (nested-vlan), table + SVG in results/
	@hack/bench/neutron.sh

.PHONY: bench-peer
bench-peer: ## ours vs kuryr-kubernetes on one real Neutron (by hand): KURYR_PEER_SRC=<kuryr-kubernetes> KURYR_LIB_SRC=<kuryr-lib>; results/
	@KURYR_PEER_SRC="$(KURYR_PEER_SRC)" KURYR_LIB_SRC="$(KURYR_LIB_SRC)" hack/bench/peer.sh

.PHONY: lint
lint: ## gofmt check, go vet, staticcheck (pinned in hack/tools/lint)
	@echo "gofmt"; out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
		if [[ -n "$$out" ]]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi
	@echo "go vet"; $(GO) vet ./...
	@echo "staticcheck"; $(GO) tool -modfile=hack/tools/lint/go.mod staticcheck ./...
	@echo "generated files up to date"; $(MAKE) --no-print-directory generate >/dev/null; \
		if ! git diff --quiet -- ':(glob)api/**/zz_generated*' deploy/crds || [[ -n "$$(git ls-files --others --exclude-standard ':(glob)api/**/zz_generated*' deploy/crds)" ]]; then \
			echo "api/ or deploy/crds changed after 'make generate': commit the regenerated files"; git status --short -- ':(glob)api/**/zz_generated*' deploy/crds; exit 1; fi

# make run / make demo: the all-in-one (test/aio, docs/all-in-one.md). They need root
# (network namespaces); the check comes first so nothing is built for nothing.
AIO_ROOT_CHECK = if [[ $$(id -u) -ne 0 ]]; then \
	echo "make $@ needs root: it creates network namespaces (the simulated node VMs). Run: sudo make $@"; exit 1; fi

.PHONY: run
run: ## the all-in-one: simulated cloud and node VMs, real Kubernetes API; Ctrl-C removes it all
	@$(AIO_ROOT_CHECK)
	@$(MAKE) --no-print-directory build
	@echo "go build kuryr-aio"; $(GO) build -o $(BIN)/kuryr-aio ./test/aio/cmd/kuryr-aio
	@echo "Kubernetes control plane and node components (built once into the cache, then seconds)"; \
	kb="$$(hack/build-kube-bins.sh | tail -n1)"; \
	nb="$$(hack/build-node-bins.sh | tail -n1)"; \
	exec $(BIN)/kuryr-aio run --bin-dir $(BIN) --kube-bin-dir "$$kb" --node-bin-dir "$$nb" $(AIO_FLAGS)

.PHONY: demo
demo: ## the all-in-one demo: print the table, tear down; exit 0 only if every interface is ready
	@$(AIO_ROOT_CHECK)
	@$(MAKE) --no-print-directory build
	@echo "go build kuryr-aio"; $(GO) build -o $(BIN)/kuryr-aio ./test/aio/cmd/kuryr-aio
	@echo "Kubernetes control plane and node components (built once into the cache, then seconds)"; \
	kb="$$(hack/build-kube-bins.sh | tail -n1)"; \
	nb="$$(hack/build-node-bins.sh | tail -n1)"; \
	exec $(BIN)/kuryr-aio demo --bin-dir $(BIN) --kube-bin-dir "$$kb" --node-bin-dir "$$nb" $(AIO_FLAGS)

.PHONY: clean
clean:
	rm -rf $(BIN)

.PHONY: help
help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

.PHONY: generate
generate: ## regenerate deepcopy code and CRD YAML from api/ (controller-tools v0.23.0)
	$(GO) tool -modfile=hack/tools/codegen/go.mod controller-gen object paths=./api/... \
		crd:allowDangerousTypes=false paths=./api/... output:crd:artifacts:config=deploy/crds
