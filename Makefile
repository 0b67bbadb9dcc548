# The operator's image: make image builds it into dist/image, and
# build-installer pins its digest in dist/install.yaml (the CRD goes to
# dist/crds.yaml). IMG is what deploy and bundle run.
IMAGE_REPO ?= registry.example.com/memcached-operator
VERSION ?= 0.1.0
IMG ?= $(IMAGE_REPO):$(VERSION)
IMAGE_PLATFORMS ?= linux/amd64 linux/arm64

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set)
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

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
	go -C test build -o "$(LOCALBIN)/demo" ./cmd/demo
	"$(LOCALBIN)/demo" --bin-dir "$(CONTROL_PLANE_DIR)" --manager bin/manager

.PHONY: demo-node
demo-node: node-check build k8s-bins node-images ## Run the sample on a real node, memcached in containers, until Ctrl-C (needs root).
	go -C test build -o "$(LOCALBIN)/demo" ./cmd/demo
	hack/in-netns.sh $(DEMO_NETNS) "$(LOCALBIN)/demo" --bin-dir "$(CONTROL_PLANE_DIR)" --manager bin/manager \
		--real-node --node-bin-dir "$(NODE_BIN_DIR)" --node-images "$(NODE_IMAGES)" --netns $(DEMO_NETNS)

.PHONY: simcluster
simcluster: k8s-bins ## Run a simulated cluster until Ctrl-C; its kubeconfig goes to simcluster.kubeconfig.
	go -C test run ./cmd/simcluster --bin-dir "$(CONTROL_PLANE_DIR)" --kubeconfig "$(CURDIR)/simcluster.kubeconfig"

##@ Development

.PHONY: manifests
manifests: controller-gen kustomize dashboard ## Generate the CustomResourceDefinition and ClusterRole objects and the Grafana dashboard, and render config/ into the Helm chart.
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	go run ./hack/crdbounds config/crd/bases/*.yaml
	KUSTOMIZE="$(KUSTOMIZE)" hack/sync-chart.sh

.PHONY: dashboard
dashboard: ## Generate config/components/dashboard/memcached-dashboard.json, the Grafana dashboard, with hack/tools/dashboard.
	go -C hack/tools/dashboard run . -o "$(CURDIR)/config/components/dashboard/memcached-dashboard.json"

.PHONY: dashboard-image
dashboard-image: memcached exporter ## Draw docs/images/dashboard.png: the dashboard's queries on 3 minutes of two real memcached servers under load (no Grafana).
	@mkdir -p docs/images
	go -C hack/tools/dashboard run ./render -memcached "$(MEMCACHED_BINARY)" -exporter "$(EXPORTER_BINARY)" \
		-dashboard "$(CURDIR)/config/components/dashboard/memcached-dashboard.json" -o "$(CURDIR)/docs/images/dashboard.png"

.PHONY: generate
generate: controller-gen cel-rules api-docs ## Generate the CEL rules of spec.extraArgs, DeepCopy methods and server-side apply configurations for the API types, and docs/api.md.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt" applyconfiguration:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: cel-rules
cel-rules: ## Generate api/v1alpha1/zz_generated.extraargs.go: the CEL rules of spec.extraArgs and the memory limit, from memcached's option tables.
	go run ./internal/memcached/celgen -header hack/boilerplate.go.txt -out api/v1alpha1/zz_generated.extraargs.go

.PHONY: api-docs
api-docs: crd-ref-docs cel-rules ## Generate docs/api.md, the API reference, from the Go types, doc comments and markers of api/.
	hack/apidocs.sh "$(CRD_REF_DOCS)"

.PHONY: verify-gen
verify-gen: manifests generate ## Fail if a generated file is not up to date, or would change with the date.
	@hack/verify-headers.sh
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "Generated files are stale; run 'make manifests generate' and commit the result:"; \
		git status --porcelain; git --no-pager diff --stat; exit 1; \
	fi

# The Go modules of this repository: the operator, and the tests and tools
# that run it (simulated cluster, end-to-end tests, benchmark, dashboard).
MODULES = . test hack/tools/image hack/tools/bundle hack/tools/dashboard

.PHONY: fmt
fmt: ## Format the Go code of every module.
	@for m in $(MODULES); do go -C $$m fmt ./...; done

.PHONY: verify-fmt
verify-fmt: ## Fail if a Go file is not formatted.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "These files are not formatted; run 'make fmt':"; echo "$$unformatted"; exit 1; fi

.PHONY: vet
vet: ## Run go vet against every module.
	@for m in $(MODULES); do go -C $$m vet ./...; done

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (.golangci.yml) on every module.
	@for m in $(MODULES); do (cd $$m && "$(GOLANGCI_LINT)" run ./...); done

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint and apply the fixes it can.
	@for m in $(MODULES); do (cd $$m && "$(GOLANGCI_LINT)" run --fix ./...); done

.PHONY: test
test: manifests generate fmt vet k8s-bins memcached memcached-proxy promtool exporter helm ## Run the unit tests (also the benchmark's), the envtest tests (real kube-apiserver), the real-memcached and proxy tests, promtool's tests of the alert rules and the check of their metric names against real scrapes, with the race detector.
	KUBEBUILDER_ASSETS="$(CONTROL_PLANE_DIR)" go test -race ./... -coverprofile cover.out
	MEMCACHED_BINARY="$(MEMCACHED_BINARY)" MEMCACHED_PROXY_BINARY="$(MEMCACHED_PROXY_BINARY)" PROMTOOL="$(PROMTOOL)" \
		EXPORTER_BINARY="$(EXPORTER_BINARY)" KUBEBUILDER_ASSETS="$(CONTROL_PLANE_DIR)" HELM_BINARY="$(HELM)" \
		go -C test test -race ./memcached/... ./ring/... ./proxy/... ./bench/... ./alerts/... ./scrape/...
	HELM="$(HELM)" go -C hack/tools/dashboard test ./...

.PHONY: test-e2e
test-e2e: build k8s-bins test-crds helm build-installer ## Run the end-to-end tests on a simulated cluster, with the operator as a local process.
	CONTROL_PLANE_DIR="$(CONTROL_PLANE_DIR)" MANAGER_BINARY="$(CURDIR)/bin/manager" TEST_CRDS_DIR="$(TEST_CRDS_DIR)" \
		HELM_BINARY="$(HELM)" IMAGE_LAYOUT="$(CURDIR)/dist/image" INSTALL_MANIFEST="$(CURDIR)/dist/install.yaml" \
		CRDS_MANIFEST="$(CURDIR)/dist/crds.yaml" KUSTOMIZE_BINARY="$(KUSTOMIZE)" \
		go -C test test ./e2e/ -count=1 -shuffle=on -timeout 40m -v $(E2E_ARGS)

.PHONY: test-e2e-oldest
test-e2e-oldest: ## Run the end-to-end tests on the oldest Kubernetes the operator supports (hack/tools/kube-oldest; its control plane is built on first use).
	$(MAKE) test-e2e KUBE_TOOLS=kube-oldest

FUZZTIME ?= 30s
.PHONY: fuzz
fuzz: ## Fuzz the argument rules, the object builders, their applied digests and the status computation, each for FUZZTIME (default 30s).
	go test ./internal/memcached/ -run '^$$' -fuzz '^FuzzCheckExtraArgs$$' -fuzztime $(FUZZTIME)
	go test ./internal/resources/ -run '^$$' -fuzz '^FuzzBuild$$' -fuzztime $(FUZZTIME)
	go test ./internal/resources/ -run '^$$' -fuzz '^FuzzContentHash$$' -fuzztime $(FUZZTIME)
	go test ./internal/status/ -run '^$$' -fuzz '^FuzzCompute$$' -fuzztime $(FUZZTIME)

CHAOS_ARGS ?=
CHAOS_RUN ?= .
.PHONY: test-chaos
test-chaos: build k8s-bins ## Inject faults on simulated clusters while the operator works, and check nothing was lost; figures and logs in bin/chaos (CHAOS_ARGS="-size=500", CHAOS_RUN=TestLeaderFailover).
	CONTROL_PLANE_DIR="$(CONTROL_PLANE_DIR)" MANAGER_BINARY="$(CURDIR)/bin/manager" \
		go -C test test ./chaos/ -count=1 -timeout 90m -v -run '$(CHAOS_RUN)' -args -out="$(LOCALBIN)/chaos" $(CHAOS_ARGS)

.PHONY: helm-lint
helm-lint: manifests helm ## Lint and render the Helm chart in charts/memcached-operator.
	"$(HELM)" lint --strict charts/memcached-operator
	"$(HELM)" template memcached-operator charts/memcached-operator --namespace memcached-operator-system >/dev/null
	"$(HELM)" template memcached-operator charts/memcached-operator --namespace memcached-operator-system \
		--set 'watchNamespaces={a,b}' --set metrics.serviceMonitor.enabled=true --set networkPolicy.enabled=true \
		--set prometheusRule.enabled=true >/dev/null

# The CRDs of other projects the end-to-end tests install: prometheus-operator's
# ServiceMonitor (and PrometheusRule) and cert-manager's Issuer and Certificate, generated from their
# Go API types (pinned in hack/tools/monitoring and hack/tools/certmanager).
TEST_CRDS_DIR ?= $(LOCALBIN)/test-crds
.PHONY: test-crds
test-crds: controller-gen ## Generate the ServiceMonitor, PrometheusRule, Issuer and Certificate CRDs for the end-to-end tests.
	@rm -rf "$(TEST_CRDS_DIR)" "$(TEST_CRDS_DIR).all" && mkdir -p "$(TEST_CRDS_DIR)"
	cd hack/tools/monitoring && "$(CONTROLLER_GEN)" crd \
		paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:dir="$(TEST_CRDS_DIR).all"
	mv "$(TEST_CRDS_DIR).all/monitoring.coreos.com_prometheusrules.yaml" "$(TEST_CRDS_DIR)/"
	cd hack/tools/certmanager && "$(CONTROLLER_GEN)" crd \
		paths=github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1 output:crd:dir="$(TEST_CRDS_DIR).all"
	mv "$(TEST_CRDS_DIR).all/monitoring.coreos.com_servicemonitors.yaml" \
		"$(TEST_CRDS_DIR).all/cert-manager.io_issuers.yaml" "$(TEST_CRDS_DIR).all/cert-manager.io_certificates.yaml" \
		"$(TEST_CRDS_DIR)/" && rm -rf "$(TEST_CRDS_DIR).all"

##@ Real node (needs root)

NODE_BIN_DIR ?= $(shell hack/build-node.sh --print-dir)
NODE_IMAGES ?= $(LOCALBIN)/node-images.tar
DEMO_NETNS ?= memcached-operator-demo
TEST_NODE_NETNS ?= memcached-operator-test-node

.PHONY: node-packages
node-packages: ## Install the real node's Debian packages: containerd, runc, CNI plugins, iptables (needs root).
	hack/install-node-packages.sh

.PHONY: node-check
node-check: ## Say in one line what this machine lacks to run the real node, if anything.
	@hack/check-node-host.sh

.PHONY: node-bins
node-bins: ## Build kubelet, kube-proxy, CoreDNS and memcached_exporter from Go modules (cached; minutes when cold).
	@hack/build-node.sh >/dev/null

.PHONY: node-images
node-images: image node-bins ## Write the real node's images (pause, memcached, exporter, operator, a client) to bin/node-images.tar.
	CGO_ENABLED=0 go -C test build -trimpath -ldflags='-s -w' -o "$(LOCALBIN)/node/pause" ./cmd/pause
	CGO_ENABLED=0 go -C test build -trimpath -ldflags='-s -w' -o "$(LOCALBIN)/node/memcached-client" ./cmd/memcached-client
	go -C test run ./cmd/nodeimages --out "$(NODE_IMAGES)" --pause "$(LOCALBIN)/node/pause" --client "$(LOCALBIN)/node/memcached-client" \
		--memcached-rootfs "$$(hack/fetch-memcached-rootfs.sh)" --exporter "$(NODE_BIN_DIR)/memcached_exporter" \
		--operator-layout "$(CURDIR)/dist/image"

.PHONY: test-node
test-node: node-check build-installer k8s-bins node-images ## Run the release and memcached on a real node, in a network namespace of their own (needs root).
	go -C test test -c -o "$(LOCALBIN)/node.test" ./node/
	cd test/node && CONTROL_PLANE_DIR="$(CONTROL_PLANE_DIR)" NODE_BIN_DIR="$(NODE_BIN_DIR)" NODE_IMAGES="$(NODE_IMAGES)" \
		INSTALL_MANIFEST="$(CURDIR)/dist/install.yaml" CRDS_MANIFEST="$(CURDIR)/dist/crds.yaml" \
		"$(CURDIR)/hack/in-netns.sh" $(TEST_NODE_NETNS) "$(LOCALBIN)/node.test" -test.v -test.timeout 30m $(NODE_ARGS)

BENCH_ARGS ?=
.PHONY: bench
bench: build k8s-bins ## Benchmark the operator against the no-operator baseline on fresh simulated clusters (BENCH_ARGS="-n 200").
	go -C test run ./bench --repo "$(CURDIR)" --bin-dir "$(CONTROL_PLANE_DIR)" --manager "$(CURDIR)/bin/manager" --out "$(LOCALBIN)/bench" $(BENCH_ARGS)

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build manager binary.
	go build -o bin/manager ./cmd

.PHONY: run
run: manifests generate fmt vet ## Run the operator from your host against the cluster in your kubeconfig.
	go run ./cmd

##@ Release

.PHONY: image
image: manifests generate ## Build the operator's image for IMAGE_PLATFORMS, without a container engine, as an OCI layout in dist/image.
	@mkdir -p dist
	@for p in $(IMAGE_PLATFORMS); do \
		echo "Building the manager for $$p"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build -trimpath -ldflags='-s -w' -o "$(LOCALBIN)/image/$${p%/*}-$${p#*/}/manager" ./cmd; \
	done
	go -C hack/tools/image run . --out "$(CURDIR)/dist/image" --version "$(VERSION)" --revision "$$(git rev-parse HEAD)" \
		--created "$$(git log -1 --format=%ct)" \
		$(foreach p,$(IMAGE_PLATFORMS),$(p)="$(LOCALBIN)/image/$(subst /,-,$(p))/manager") > dist/image.digest
	@echo "Image $(IMAGE_REPO)@$$(cat dist/image.digest) written to dist/image; 'make image-push' pushes it"

.PHONY: image-push
image-push: ## Push dist/image to IMAGE_REPO:VERSION (credentials of your Docker config).
	go -C hack/tools/image run . --push "$(IMAGE_REPO):$(VERSION)" "$(CURDIR)/dist/image"

.PHONY: build-installer
build-installer: image kustomize ## Write dist/crds.yaml, the CRD, and dist/install.yaml: namespace, RBAC, the manager's Deployment by image digest, metrics Service.
	"$(KUSTOMIZE)" build config/crd > dist/crds.yaml
	hack/render.sh "$(KUSTOMIZE)" config/operator "$(IMAGE_REPO)@$$(cat dist/image.digest)" > dist/install.yaml
	@if [ "$(PIN_DEFAULT_IMAGES)" = true ]; then \
		go -C hack/tools/image run . --pin-in "$(CURDIR)/dist/install.yaml" $(DEFAULT_IMAGES) && \
		echo "Pinned the default images in dist/install.yaml by digest"; fi
	@echo "Wrote dist/crds.yaml and dist/install.yaml for $(IMAGE_REPO)@$$(cat dist/image.digest)"

## A release pins the images the operator runs for the Memcacheds that name none, those config/manager
## passes, by the digests their registries serve (PIN_DEFAULT_IMAGES=true; needs the registries): in
## dist/install.yaml (make build-installer) and in the bundle's arguments and relatedImages (make bundle).
PIN_DEFAULT_IMAGES ?= false
DEFAULT_IMAGES = $(shell sed -n 's/^ *- --\(memcached\|exporter\)-image=//p' config/manager/manager.yaml)

BUNDLE_VERSION ?= $(VERSION)
BUNDLE_CHANNELS ?= alpha
BUNDLE_DEFAULT_CHANNEL ?= alpha
# The upgrade edge: the version this bundle replaces (spec.replaces) and the
# versions it upgrades from directly (olm.skipRange, e.g. '<0.2.0'). Empty for
# the first version.
BUNDLE_REPLACES ?=
BUNDLE_SKIP_RANGE ?=

.PHONY: bundle
bundle: manifests kustomize ## Generate and validate the OLM bundle (bundle/, bundle.Dockerfile) from config/ for IMG.
	go -C hack/tools/bundle run . --config-dir "$(CURDIR)/config" --kustomize "$(KUSTOMIZE)" \
		--image "$(IMG)" --version "$(BUNDLE_VERSION)" \
		--channels "$(BUNDLE_CHANNELS)" --default-channel "$(BUNDLE_DEFAULT_CHANNEL)" \
		--replaces "$(BUNDLE_REPLACES)" --skip-range "$(BUNDLE_SKIP_RANGE)" \
		--out "$(CURDIR)/bundle" --dockerfile "$(CURDIR)/bundle.Dockerfile" --validate
	@if [ "$(PIN_DEFAULT_IMAGES)" = true ]; then \
		go -C hack/tools/image run . --pin-in "$(CURDIR)/bundle/manifests/memcached-operator.clusterserviceversion.yaml" $(DEFAULT_IMAGES) && \
		go -C hack/tools/bundle run . --generate=false --validate --out "$(CURDIR)/bundle" && \
		echo "Pinned the default images in the bundle by digest"; fi

.PHONY: test-release
test-release: manifests kustomize ## Test the image and OLM bundle generators (no cluster needed).
	go -C hack/tools/image test -count=1 ./...
	KUSTOMIZE="$(KUSTOMIZE)" go -C hack/tools/bundle test -count=1 ./...

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests $(KUBECTL_BUILD) ## Install CRDs into the cluster in your kubeconfig.
	"$(KUBECTL)" apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests $(KUBECTL_BUILD) ## Delete the CRD from the cluster in your kubeconfig, and with it every Memcached and its pods. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	@echo "WARNING: deleting the CRD memcacheds.cache.example.com deletes every Memcached in the cluster, and their caches." >&2
	"$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -k config/crd

.PHONY: deploy
deploy: manifests kustomize $(KUBECTL_BUILD) ## Deploy the operator, running IMG, to the cluster in your kubeconfig.
	hack/render.sh "$(KUSTOMIZE)" config/default "$(IMG)" | "$(KUBECTL)" apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize $(KUBECTL_BUILD) ## Undeploy the operator (config/operator: all of config/default but the CRD, so the Memcacheds stay) from the cluster in your kubeconfig. Call with ignore-not-found=true to ignore resource not found errors during deletion.
	"$(KUSTOMIZE)" build config/operator | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p "$(LOCALBIN)"

## Control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok),
## built from Go modules into a cache outside the repository, keyed by version.
## KUBE_TOOLS=kube-oldest takes the Kubernetes binaries of the oldest supported
## release (hack/tools/kube-oldest) instead of hack/tools/kube's.
export KUBE_TOOLS ?= kube
CONTROL_PLANE_DIR ?= $(shell KUBE_TOOLS="$(KUBE_TOOLS)" hack/build-control-plane.sh --print-dir)

## Debian's memcached, downloaded and unpacked without root into a cache
## outside the repository, keyed by version; MEMCACHED_BINARY overrides it.
MEMCACHED_BINARY ?= $(shell hack/fetch-memcached.sh --print-path)

## Debian trixie's memcached, built with the proxy, for the proxy tests:
## unpacked without root, with its own glibc, into the same cache;
## MEMCACHED_PROXY_BINARY overrides it.
MEMCACHED_PROXY_BINARY ?= $(shell hack/fetch-memcached-proxy.sh --print-path)

## promtool, built from Prometheus' Go module (pinned in hack/tools/promtool)
## into a cache outside the repository, keyed by version.
PROMTOOL_VERSION ?= $(shell sed -n 's#^\s*\(require \)\?github.com/prometheus/prometheus \(v[^ ]*\).*#\2#p' hack/tools/promtool/go.mod | head -n 1)
TOOLS_CACHE ?= $(or $(MEMCACHED_OPERATOR_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/memcached-operator)
PROMTOOL ?= $(TOOLS_CACHE)/promtool/promtool-$(PROMTOOL_VERSION)

## memcached_exporter, built from its Go module (pinned in hack/tools/exporter)
## into a cache outside the repository, keyed by version.
EXPORTER_VERSION ?= $(shell sed -n 's#^\s*\(require \)\?github.com/prometheus/memcached_exporter \(v[^ ]*\).*#\2#p' hack/tools/exporter/go.mod | head -n 1)
EXPORTER_BINARY ?= $(TOOLS_CACHE)/memcached_exporter/memcached_exporter-$(EXPORTER_VERSION)

## Tool Binaries
## kubectl: the one on the PATH, otherwise the one built with the control plane
## (then the targets that use it build the control plane first).
PATH_KUBECTL := $(shell command -v kubectl 2>/dev/null)
KUBECTL ?= $(or $(PATH_KUBECTL),$(CONTROL_PLANE_DIR)/kubectl)
KUBECTL_BUILD := $(if $(PATH_KUBECTL),,k8s-bins)
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
HELM ?= $(LOCALBIN)/helm
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs

## Tool Versions
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= $(shell sed -n 's#^\s*\(require \)\?helm.sh/helm/v3 \(v[^ ]*\).*#\2#p' hack/tools/helm/go.mod | head -n 1)
CRD_REF_DOCS_VERSION ?= $(shell sed -n 's#^\s*\(require \)\?github.com/elastic/crd-ref-docs \(v[^ ]*\).*#\2#p' hack/tools/apidocs/go.mod | head -n 1)
HELM_K8S_MINOR = $(shell sed -n 's#^\s*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' hack/tools/helm/go.mod | head -n 1)

.PHONY: k8s-bins
k8s-bins: ## Build the control-plane binaries from Go modules (cached; about 11 minutes when cold).
	@hack/build-control-plane.sh >/dev/null

.PHONY: memcached
memcached: ## Provide Debian's memcached for the tests (cached; a few seconds when cold).
	@if [ "$(MEMCACHED_BINARY)" = "$$(hack/fetch-memcached.sh --print-path)" ]; then hack/fetch-memcached.sh >/dev/null; fi

.PHONY: memcached-proxy
memcached-proxy: ## Provide Debian trixie's memcached, built with the proxy, for the proxy tests: the files of the real node's memcached image (cached; a few seconds when cold).
	@if [ "$(MEMCACHED_PROXY_BINARY)" = "$$(hack/fetch-memcached-proxy.sh --print-path)" ]; then hack/fetch-memcached-proxy.sh >/dev/null; fi

.PHONY: promtool
promtool: ## Build promtool from Prometheus' Go module, pinned in hack/tools/promtool (cached; minutes when cold).
	@[ -x "$(PROMTOOL)" ] || { \
	echo "Building promtool $(PROMTOOL_VERSION) (minutes on a cold Go build cache)"; \
	mkdir -p "$$(dirname "$(PROMTOOL)")"; \
	CGO_ENABLED=0 go build -C hack/tools/promtool -trimpath \
		-ldflags "-s -w -X github.com/prometheus/common/version.Version=$(PROMTOOL_VERSION:v%=%)" \
		-o "$(PROMTOOL).partial" github.com/prometheus/prometheus/cmd/promtool; \
	mv "$(PROMTOOL).partial" "$(PROMTOOL)"; \
	}

.PHONY: exporter
exporter: ## Build memcached_exporter from its Go module, pinned in hack/tools/exporter (cached; a minute when cold).
	@[ -x "$(EXPORTER_BINARY)" ] || { \
	echo "Building memcached_exporter $(EXPORTER_VERSION)"; \
	mkdir -p "$$(dirname "$(EXPORTER_BINARY)")"; \
	CGO_ENABLED=0 go build -C hack/tools/exporter -trimpath \
		-ldflags "-s -w -X github.com/prometheus/common/version.Version=$(EXPORTER_VERSION:v%=%)" \
		-o "$(EXPORTER_BINARY).partial" github.com/prometheus/memcached_exporter/cmd/memcached_exporter; \
	mv "$(EXPORTER_BINARY).partial" "$(EXPORTER_BINARY)"; \
	}

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Download golangci-lint locally if necessary.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: helm
helm: $(HELM) ## Build Helm, pinned in hack/tools/helm, if necessary.
$(HELM): hack/tools/helm/go.mod | $(LOCALBIN)
	@[ -f "$(HELM)-$(HELM_VERSION)" ] || { \
	echo "Building helm $(HELM_VERSION)"; \
	go build -C hack/tools/helm -trimpath -ldflags "-s -w \
		-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
		-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)" \
		-o "$(HELM)-$(HELM_VERSION)" helm.sh/helm/v3/cmd/helm; \
	}
	ln -sf "$$(realpath "$(HELM)-$(HELM_VERSION)")" "$(HELM)"

.PHONY: crd-ref-docs
crd-ref-docs: $(CRD_REF_DOCS) ## Build crd-ref-docs, pinned in hack/tools/apidocs, if necessary.
$(CRD_REF_DOCS): hack/tools/apidocs/go.mod | $(LOCALBIN)
	@[ -f "$(CRD_REF_DOCS)-$(CRD_REF_DOCS_VERSION)" ] || { \
	echo "Building crd-ref-docs $(CRD_REF_DOCS_VERSION)"; \
	go build -C hack/tools/apidocs -trimpath -ldflags "-s -w -X main.buildVersion=$(CRD_REF_DOCS_VERSION)" \
		-o "$(CRD_REF_DOCS)-$(CRD_REF_DOCS_VERSION)" github.com/elastic/crd-ref-docs; \
	}
	ln -sf "$$(realpath "$(CRD_REF_DOCS)-$(CRD_REF_DOCS_VERSION)")" "$(CRD_REF_DOCS)"

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
