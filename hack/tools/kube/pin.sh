#!/usr/bin/env bash
# Pins this tools module to one Kubernetes release.
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...)
# at v0.0.0 and replaces them with paths inside its own tree, which a dependent
# module cannot follow. This script replaces each of them with the published
# v0.X.Y release that matches the Kubernetes version, then tidies the module.
#
# Usage: hack/tools/kube/pin.sh v1.37.2 [module directory, default hack/tools/kube]
#        hack/tools/kube/pin.sh v1.33.7 hack/tools/kube-oldest
set -euo pipefail

version=${1:?usage: $0 vMAJOR.MINOR.PATCH [module directory]}
cd "${2:-$(dirname "$0")}"

staging_version="v0.${version#v1.}"
gomod=$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')

for module in $(sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "${gomod}"); do
	go mod edit -replace="${module}=${module}@${staging_version}"
done
go get "k8s.io/kubernetes@${version}"
go mod tidy
