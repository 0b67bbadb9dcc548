#!/usr/bin/env bash
# Builds the real node's binaries from Go modules into a cache directory keyed
# by their versions, skipping whatever is already there: kubelet and
# kube-proxy (from the same k8s.io/kubernetes as the control plane), CoreDNS
# and memcached_exporter.
#
# The versions come from the tools modules under hack/tools. The cache lives
# outside the repository so that every clone on a machine shares it:
#   ${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}
#
# Usage:
#   hack/build-node.sh            build what is missing, print the directory last
#   hack/build-node.sh --print-dir print the directory only
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="${root}/hack/tools"

module_version() { # module_version <tools module dir> <module path>
	sed -n "s#^\s*\(require \)\?$2 \(v[^ ]*\).*#\2#p" "${tools}/$1/go.mod" | head -n 1
}

k8s_version=$(module_version kube k8s.io/kubernetes)
coredns_version=$(module_version coredns github.com/coredns/coredns)
exporter_version=$(module_version exporter github.com/prometheus/memcached_exporter)

cache_root=${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}
dest="${cache_root}/node/k8s-${k8s_version}_coredns-${coredns_version}_exporter-${exporter_version}"

if [[ "${1:-}" == "--print-dir" ]]; then
	echo "${dest}"
	exit 0
fi

mkdir -p "${dest}"

k8s_minor=$(echo "${k8s_version}" | cut -d. -f2)
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=${k8s_version} -X k8s.io/component-base/version.gitMajor=1"
k8s_ldflags+=" -X k8s.io/component-base/version.gitMinor=${k8s_minor} -X k8s.io/component-base/version.gitTreeState=clean"

# build <tools module> <package> <binary name> [ldflags]
build() {
	local target="${dest}/$3"
	if [[ -x "${target}" ]]; then
		echo "  ${3}: cached" >&2
		return
	fi
	echo "  ${3}: building $2 (this can take minutes on a cold Go build cache)" >&2
	local start=${SECONDS}
	CGO_ENABLED=0 go build -C "${tools}/$1" -trimpath -ldflags="-s -w ${4:-}" -o "${target}.partial" "$2"
	mv "${target}.partial" "${target}"
	echo "  ${3}: built in $((SECONDS - start))s" >&2
}

echo "Node k8s ${k8s_version}, CoreDNS ${coredns_version}, memcached_exporter ${exporter_version} in ${dest}" >&2
build kube k8s.io/kubernetes/cmd/kubelet kubelet "${k8s_ldflags}"
build kube k8s.io/kubernetes/cmd/kube-proxy kube-proxy "${k8s_ldflags}"
build coredns github.com/coredns/coredns coredns
build exporter github.com/prometheus/memcached_exporter/cmd/memcached_exporter memcached_exporter \
	"-X github.com/prometheus/common/version.Version=${exporter_version#v}"
echo "${dest}"
