# Hookpost. `make test` and `make demo` do the whole set-up on a fresh machine.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN            := $(CURDIR)/bin
KUBE_VERSION   ?= 1.37.2
CONTROLLER_GEN ?= $(BIN)/controller-gen
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM           ?= $(BIN)/helm
HELM_VERSION   ?= v3.22.0
GINKGO_FLAGS   ?=
export KUBEBUILDER_ASSETS ?= $(BIN)/k8s/$(KUBE_VERSION)
# Tests and the demo run the kubectl built next to kube-apiserver when the machine has none.
export PATH := $(PATH):$(KUBEBUILDER_ASSETS)
IMG            ?= ghcr.io/hookpost/hookpost:latest

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from the Go types, and copy the CRDs into the Helm chart.
	$(CONTROLLER_GEN) crd rbac:roleName=hookpost-manager paths="./api/..." paths="./internal/controller/..." paths="./internal/ingest/..." output:crd:artifacts:config=config/crd/bases
	@if [ -d charts/hookpost/crds ]; then cp config/crd/bases/*.yaml charts/hookpost/crds/; fi

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt:
	go fmt ./...

.PHONY: vet
vet:
	go vet ./...

.PHONY: verify
verify: generate manifests ## Regenerate everything and fail if the tree changed.
	@files=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$files" ]; then echo "gofmt would change: $$files"; exit 1; fi
	@git diff --exit-code -- api config charts || { echo "generated files are out of date: run 'make generate manifests' and commit"; exit 1; }

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl from the Go module proxy into bin/k8s/ (once; minutes the first time).
	@KUBE_VERSION=$(KUBE_VERSION) hack/envtest-assets.sh >/dev/null

.PHONY: postgres
postgres: ## Install the PostgreSQL server binaries if missing (tests start throwaway clusters).
	@hack/ensure-postgres.sh

.PHONY: node
node: ## Install Node.js if missing (the JSON.stringify and signature interoperability tests run the real node).
	@hack/ensure-node.sh

.PHONY: test
test: envtest postgres node $(HELM) ## Run every test: unit, envtest suites, real PostgreSQL and NATS, helm lint.
	go vet ./...
	go test ./... -count=1 -timeout 30m $(GINKGO_FLAGS)

.PHONY: bench
bench: envtest postgres build $(HELM) ## Benchmarks: Go testing.B per package and the end-to-end benchmark with real processes (BENCH_FLAGS='-modes=fast -memory-subscriptions=0' for a quick one).
	go test -run '^$$' -bench . -benchmem ./internal/...
	go run ./test/bench $(BENCH_FLAGS)

.PHONY: chaos
chaos: envtest postgres ## Chaos run with real processes (minutes; not part of test): 20,000 events while the operator is SIGKILLed and PostgreSQL, NATS and kube-apiserver restart; fails if one is lost (CHAOS_FLAGS='-events 2000 -chaos-for 80s' for a quick one).
	go run ./test/chaos $(CHAOS_FLAGS)

# Every fuzz target as package:Target; go test -fuzz takes one target per package invocation.
FUZZ_TARGETS := \
	./internal/source/postgres:FuzzDecodeRow \
	./internal/source/nats:FuzzDecodeMessage \
	./internal/envelope:FuzzCanonical \
	./internal/ingest:FuzzIndexMatch \
	./internal/filter:FuzzFilter \
	./internal/signing:FuzzSignThenVerify \
	./internal/signing:FuzzVerifyStandardHeaders
FUZZTIME ?= 10m

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 10m), one at a time; a crasher lands in the package's testdata/fuzz.
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $(FUZZ_FLAGS) $$pkg || exit 1; \
	done

##@ Build

.PHONY: build
build: ## Build the manager and the kubectl plugin into bin/.
	go build -o $(BIN)/manager ./cmd/manager
	@if [ -d cmd/kubectl-hookpost ]; then go build -o $(BIN)/kubectl-hookpost ./cmd/kubectl-hookpost; fi

.PHONY: demo
demo: envtest build $(HELM) ## Run Hookpost locally with no cluster: control plane, operator, NATS (DEMO_SOURCE=postgres for an outbox) and a receiver.
	@if [ "$$DEMO_SOURCE" = postgres ]; then hack/ensure-postgres.sh; fi
	go build -o $(BIN)/hookpost-demo ./hack/demo
	$(BIN)/hookpost-demo

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the Helm chart.
	$(HELM) lint --strict charts/hookpost

##@ Deployment

.PHONY: deploy
deploy: ## Install the CRDs and the manager into the current kubectl context (IMG=... picks the image).
	kubectl kustomize config/default | sed 's|image: ghcr.io/hookpost/hookpost:latest|image: $(IMG)|' | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove what deploy installed, CRDs (and so every WebhookSubscription and WebhookDelivery) included.
	kubectl delete --ignore-not-found -k config/default

$(CONTROLLER_GEN):
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

$(HELM):
	GOBIN=$(BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: help
help:
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
