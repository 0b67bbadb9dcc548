#!/usr/bin/env bash
# Says, in one line, what this machine lacks to run the real node, and fails;
# says nothing and succeeds when it lacks nothing.
#
# Usage: hack/check-node-host.sh
set -uo pipefail

fail() {
	echo "The real node cannot run here: $*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || fail "it needs root (containerd, runc, iptables and a network namespace); run make test-node as root"
for command in containerd containerd-shim-runc-v2 runc ctr iptables ip nsenter unshare; do
	command -v "${command}" >/dev/null || fail "${command} is not installed; run hack/install-node-packages.sh as root"
done
for plugin in bridge host-local loopback portmap; do
	[[ -x /usr/lib/cni/${plugin} ]] || fail "the CNI plugin ${plugin} is not in /usr/lib/cni; run hack/install-node-packages.sh as root"
done
if [[ -d /sys/fs/cgroup/memory ]]; then
	cgroups=/sys/fs/cgroup/memory
else
	cgroups=/sys/fs/cgroup
fi
probe="${cgroups}/memcached-operator-probe-$$"
mkdir "${probe}" 2>/dev/null || fail "cgroups are not writable under ${cgroups}, so the node cannot run containers"
rmdir "${probe}"
unshare --net true 2>/dev/null || fail "network namespaces cannot be made here"
