# Image URL to use all building/pushing image targets
IMG ?= controller:latest

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set)
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

# CONTAINER_TOOL defines the container tool to be used for building images.
CONTAINER_TOOL ?= docker

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Getting started

.PHONY: demo
demo: build k8s-bins ## Run the operator on a simulated cluster with the sample Memcached, until Ctrl-C.
	go build -o bin/demo ./cmd/demo
	bin/demo --bin-dir "$(CONTROL_PLANE_DIR)" --manager bin/manager

.PHONY: simcluster
simcluster: k8s-bins ## Run a simulated cluster until Ctrl-C; its kubeconfig goes to simcluster.kubeconfig.
	go run ./cmd/simcluster --bin-dir "$(CONTROL_PLANE_DIR)" --kubeconfig simcluster.kubeconfig

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CustomResourceDefinition and ClusterRole objects.
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods and server-side apply configurations for the API types.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt" applyconfiguration:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify-gen
verify-gen: manifests generate ## Fail if generated files are not up to date.
	@if [ -n "$$(git status --porcelain -- api config)" ]; then \
		echo "Generated files are stale; run 'make manifests generate' and commit the result:"; \
		git status --porcelain -- api config; git --no-pager diff --stat -- api config; exit 1; \
	fi

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: test
test: manifests generate fmt vet k8s-bins ## Run the unit and envtest (real kube-apiserver) tests.
	KUBEBUILDER_ASSETS="$(CONTROL_PLANE_DIR)" go test $$(go list ./... | grep -v /test/) -coverprofile cover.out

.PHONY: test-e2e
test-e2e: build k8s-bins test-crds ## Run the end-to-end tests on a simulated cluster, with the operator as a local process.
	CONTROL_PLANE_DIR="$(CONTROL_PLANE_DIR)" MANAGER_BINARY="$(CURDIR)/bin/manager" TEST_CRDS_DIR="$(TEST_CRDS_DIR)" \
		go test ./test/e2e/ -count=1 -timeout 30m -v

# The CRDs of other projects the end-to-end tests install: prometheus-operator's
# ServiceMonitor, generated from its Go API types (pinned in hack/tools/monitoring).
TEST_CRDS_DIR ?= $(LOCALBIN)/test-crds
.PHONY: test-crds
test-crds: controller-gen ## Generate the ServiceMonitor CRD for the end-to-end tests.
	@rm -rf "$(TEST_CRDS_DIR)" "$(TEST_CRDS_DIR).all" && mkdir -p "$(TEST_CRDS_DIR)"
	cd hack/tools/monitoring && "$(CONTROLLER_GEN)" crd \
		paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:dir="$(TEST_CRDS_DIR).all"
	mv "$(TEST_CRDS_DIR).all/monitoring.coreos.com_servicemonitors.yaml" "$(TEST_CRDS_DIR)/" && rm -rf "$(TEST_CRDS_DIR).all"

BENCH_ARGS ?=
.PHONY: bench
bench: build k8s-bins ## Benchmark the operator against the no-operator baseline on fresh simulated clusters (BENCH_ARGS="-n 200").
	go run ./test/bench --bin-dir "$(CONTROL_PLANE_DIR)" --manager bin/manager --out bin/bench $(BENCH_ARGS)

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build manager binary.
	go build -o bin/manager ./cmd

.PHONY: run
run: manifests generate fmt vet ## Run the operator from your host against the cluster in your kubeconfig.
	go run ./cmd

.PHONY: docker-build
docker-build: ## Build docker image with the manager.
	$(CONTAINER_TOOL) build -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push docker image with the manager.
	$(CONTAINER_TOOL) push ${IMG}

.PHONY: build-installer
build-installer: manifests generate kustomize ## Generate a consolidated YAML with CRDs and deployment.
	mkdir -p dist
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=${IMG}
	"$(KUSTOMIZE)" build config/default > dist/install.yaml

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests k8s-bins ## Install CRDs into the cluster in your kubeconfig.
	"$(KUBECTL)" apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests k8s-bins ## Uninstall CRDs from the cluster in your kubeconfig. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	"$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -k config/crd

.PHONY: deploy
deploy: manifests kustomize k8s-bins ## Deploy the operator to the cluster in your kubeconfig.
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=${IMG}
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize k8s-bins ## Undeploy the operator from the cluster in your kubeconfig. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p "$(LOCALBIN)"

## Control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok),
## built from Go modules into a cache outside the repository, keyed by version.
CONTROL_PLANE_DIR ?= $(shell hack/build-control-plane.sh --print-dir)

## Tool Binaries
KUBECTL ?= $(CONTROL_PLANE_DIR)/kubectl
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen

## Tool Versions
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0

.PHONY: k8s-bins
k8s-bins: ## Build the control-plane binaries from Go modules (cached; about 11 minutes when cold).
	@hack/build-control-plane.sh >/dev/null

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen locally if necessary.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f "$(1)" ;\
GOBIN="$(LOCALBIN)" go install $${package} ;\
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ;\
} ;\
ln -sf "$$(realpath "$(1)-$(3)")" "$(1)"
endef
