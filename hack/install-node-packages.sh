#!/usr/bin/env bash
# Installs, with apt-get, the Debian packages the real node needs: containerd,
# runc, the CNI plugins, iptables and conntrack (for kube-proxy), iproute2 and
# util-linux (for its network namespace). It needs root; it does nothing when
# they are all there.
#
# Usage: hack/install-node-packages.sh
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables conntrack iproute2 util-linux)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q "install ok installed" || missing+=("${p}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "$0: the real node needs ${missing[*]}: run this script as root to install them" >&2
	exit 1
fi
echo "  node packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -qq -y --no-install-recommends "${missing[@]}" >/dev/null
