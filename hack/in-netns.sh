#!/usr/bin/env bash
# Runs a command in a network namespace of its own, named NAME, with a mount
# namespace of its own, as the real node needs: nothing the command starts is
# routed out of it, and the directories that containerd, the CNI plugins and
# the kubelet write outside their configured ones (/run/containerd,
# /var/lib/cni, /var/log/pods, /var/log/containers) are empty in-memory ones.
# When the command ends, everything left running in the namespace and in the
# cgroup tree REAL_NODE_CGROUP_ROOT (which the node's kubelet puts its pods
# under) is killed, and the namespace removed.
#
# It needs root. While it runs, other commands can join the namespace:
#   ip netns exec NAME <command>
#
# Usage:
#   hack/in-netns.sh NAME COMMAND [ARG...]
#   hack/in-netns.sh --clean NAME    remove what a run that was killed left
set -euo pipefail

clean_only=false
if [[ "${1:-}" == "--clean" ]]; then
	clean_only=true
	shift
fi
if [[ $# -lt 1 ]] || { ! ${clean_only} && [[ $# -lt 2 ]]; }; then
	echo "usage: $0 NAME COMMAND [ARG...] | $0 --clean NAME" >&2
	exit 2
fi
name=$1
shift
if [[ $(id -u) -ne 0 ]]; then
	echo "$0: needs root: it makes a network namespace for a real node" >&2
	exit 1
fi
for command in ip nsenter unshare mount; do
	command -v "${command}" >/dev/null || {
		echo "$0: ${command} is not installed (Debian packages iproute2, util-linux and mount)" >&2
		exit 1
	}
done

export REAL_NODE_CGROUP_ROOT="/memcached-operator-${name}"

# kill_cgroup_tree kills every process in the cgroup tree of the node's pods,
# in every hierarchy, and removes the tree.
kill_cgroup_tree() {
	local tree procs
	for tree in /sys/fs/cgroup/*"${REAL_NODE_CGROUP_ROOT}" /sys/fs/cgroup"${REAL_NODE_CGROUP_ROOT}"; do
		[[ -d "${tree}" ]] || continue
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			procs=$(find "${tree}" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
			[[ -z "${procs}" ]] && break
			# shellcheck disable=SC2086 # one PID per word
			kill -9 ${procs} 2>/dev/null || true
			sleep 0.2
		done
		find "${tree}" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
}

cleanup() {
	local pids
	if [[ -e "/run/netns/${name}" ]]; then
		pids=$(ip netns pids "${name}" 2>/dev/null || true)
		# shellcheck disable=SC2086 # one PID per word
		[[ -n "${pids}" ]] && kill -9 ${pids} 2>/dev/null || true
	fi
	kill_cgroup_tree
	ip netns delete "${name}" 2>/dev/null || true
}

if ${clean_only}; then
	cleanup
	exit 0
fi
if [[ -e "/run/netns/${name}" ]]; then
	echo "$0: network namespace ${name} exists: another run uses it, or left it ($0 --clean ${name})" >&2
	exit 1
fi
kill_cgroup_tree
ip netns add "${name}"
trap cleanup EXIT

# The command runs in the background so that a signal to this script reaches
# it at once; the script waits for it to end, then cleans up.
nsenter --net="/run/netns/${name}" unshare --mount --propagation private -- sh -c '
	for dir in /run/containerd /var/lib/cni /var/log/pods /var/log/containers; do
		mkdir -p "${dir}" && mount -t tmpfs -o mode=0755 tmpfs "${dir}"
	done
	exec "$@"' sh "$@" &
child=$!
trap 'kill -TERM "${child}" 2>/dev/null || true' INT TERM
status=0
wait "${child}" || status=$?
# A signal interrupts the first wait: wait again for the command to end.
while kill -0 "${child}" 2>/dev/null; do
	wait "${child}" || status=$?
done
exit "${status}"
