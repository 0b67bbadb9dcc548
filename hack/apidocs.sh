#!/usr/bin/env bash
# Regenerates docs/api.md, the API reference, from the Go types, doc comments
# and +kubebuilder markers of api/v1alpha1, with crd-ref-docs (pinned in
# hack/tools/apidocs), hack/apidocs/config.yaml and the Markdown templates of
# hack/apidocs/templates. `make api-docs` builds crd-ref-docs and runs it;
# `make generate` does too, so `make verify-gen` fails on a stale docs/api.md.
#
#   hack/apidocs.sh <crd-ref-docs binary>
#
# The output depends only on the sources: no date, path or host in it.
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 <crd-ref-docs binary>" >&2
	exit 2
fi
# The binary's path is relative to the caller's directory, not the root's.
bin=$1
[[ "${bin}" == /* ]] || bin="${PWD}/${bin}"
[[ -x "${bin}" ]] || { echo "apidocs: ${1} is not an executable; 'make crd-ref-docs' builds it" >&2; exit 1; }
cd "$(dirname "$0")/.."

# Links to the Kubernetes API reference follow k8s.io/api in go.mod:
# v0.37.x is Kubernetes 1.37.
minor=$(sed -nE 's#^[[:space:]]*(require[[:space:]]+)?k8s\.io/api v0\.([0-9]+)\..*#\2#p' go.mod | head -n 1)
[[ -n "${minor}" ]] || { echo "apidocs: no k8s.io/api version in go.mod" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT
sed -E "s#^([[:space:]]*kubernetesVersion:).*#\1 \"1.${minor}\"#" hack/apidocs/config.yaml > "${tmp}/config.yaml"
grep -q "kubernetesVersion: \"1.${minor}\"" "${tmp}/config.yaml" ||
	{ echo "apidocs: hack/apidocs/config.yaml has no render.kubernetesVersion" >&2; exit 1; }

# --max-depth: how deep types are loaded, Kubernetes ones included; 12 loads
# every type the API uses (a lower depth warns and leaves types unknown).
"${bin}" \
	--source-path=./api/v1alpha1 \
	--config="${tmp}/config.yaml" \
	--renderer=markdown \
	--templates-dir=hack/apidocs/templates \
	--output-mode=single \
	--output-path="${tmp}/api.md" \
	--max-depth=12 \
	--log-level=WARN

mkdir -p docs
mv "${tmp}/api.md" docs/api.md
