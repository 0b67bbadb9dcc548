#!/usr/bin/env bash
# Builds the control-plane binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl and kwok) from Go modules into a cache directory keyed by
# their versions, skipping whatever is already there.
#
# The versions come from the tools modules under hack/tools. The cache lives
# outside the repository so that every clone on a machine shares it:
#   ${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}
#
# KUBE_TOOLS names the tools module of the Kubernetes binaries: kube (the
# default, the version every test runs on) or kube-oldest (the oldest version
# the operator supports, for make test-e2e-oldest).
#
# Usage:
#   hack/build-control-plane.sh            build what is missing, print the directory last
#   hack/build-control-plane.sh --print-dir print the directory only
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="${root}/hack/tools"

module_version() { # module_version <tools module dir> <module path>
	sed -n "s#^\s*\(require \)\?$2 \(v[^ ]*\).*#\2#p" "${tools}/$1/go.mod" | head -n 1
}

kube_tools=${KUBE_TOOLS:-kube}
[[ -f "${tools}/${kube_tools}/go.mod" ]] || { echo "build-control-plane: no tools module hack/tools/${kube_tools}" >&2; exit 1; }
k8s_version=$(module_version "${kube_tools}" k8s.io/kubernetes)
etcd_version=$(module_version etcd go.etcd.io/etcd/server/v3)
kwok_version=$(module_version kwok sigs.k8s.io/kwok)

# recipe names how the binaries are built; a change of the flags below changes
# it, so that binaries built the old way are not taken from the cache.
recipe=stamped
cache_root=${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}
dest="${cache_root}/control-plane/k8s-${k8s_version}_etcd-${etcd_version}_kwok-${kwok_version}_${recipe}"

if [[ "${1:-}" == "--print-dir" ]]; then
	echo "${dest}"
	exit 0
fi

mkdir -p "${dest}"

# The Kubernetes binaries report their version, as released ones do: clients
# such as Helm check it.
k8s_minor=$(echo "${k8s_version}" | cut -d. -f2)
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=${k8s_version} -X k8s.io/component-base/version.gitMajor=1"
k8s_ldflags+=" -X k8s.io/component-base/version.gitMinor=${k8s_minor} -X k8s.io/component-base/version.gitTreeState=clean"
k8s_ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${k8s_version} -X k8s.io/client-go/pkg/version.gitMajor=1"
k8s_ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=${k8s_minor} -X k8s.io/client-go/pkg/version.gitTreeState=clean"

# build <tools module> <package> <binary name> [ldflags]
build() {
	local target="${dest}/$3"
	if [[ -x "${target}" ]]; then
		echo "  ${3}: cached" >&2
		return
	fi
	echo "  ${3}: building $2 (this can take minutes on a cold Go build cache)" >&2
	local start=${SECONDS}
	go build -C "${tools}/$1" -trimpath -ldflags="-s -w ${4:-}" -o "${target}.partial" "$2"
	mv "${target}.partial" "${target}"
	echo "  ${3}: built in $((SECONDS - start))s" >&2
}

echo "Control plane k8s ${k8s_version}, etcd ${etcd_version}, kwok ${kwok_version} in ${dest}" >&2
build "${kube_tools}" k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "${k8s_ldflags}"
build "${kube_tools}" k8s.io/kubernetes/cmd/kube-controller-manager kube-controller-manager "${k8s_ldflags}"
build "${kube_tools}" k8s.io/kubernetes/cmd/kube-scheduler kube-scheduler "${k8s_ldflags}"
build "${kube_tools}" k8s.io/kubernetes/cmd/kubectl kubectl "${k8s_ldflags}"
build etcd go.etcd.io/etcd/server/v3 etcd
build kwok sigs.k8s.io/kwok/cmd/kwok kwok

# kwok needs stage definitions to move nodes and pods through their lifecycle;
# its module ships the standard ones.
stages="${dest}/kwok-stages"
if [[ ! -d "${stages}" ]]; then
	kwok_dir=$(go mod download -C "${tools}/kwok" -json "sigs.k8s.io/kwok@${kwok_version}" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
	mkdir -p "${stages}.partial"
	for stage in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
		pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
		cp "${kwok_dir}/kustomize/stage/${stage}" "${stages}.partial/"
	done
	chmod -R u+w "${stages}.partial"
	mv "${stages}.partial" "${stages}"
fi

echo "${dest}"
