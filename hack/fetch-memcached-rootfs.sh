#!/usr/bin/env bash
# Provides the root file system of the memcached image that the real node
# runs: Debian trixie's memcached (built with the proxy), its libraries, and
# busybox for the shell the pods' scripts need, unpacked (not installed) into
# a cache directory keyed by the memcached version. Like the official image,
# it has a user memcache (UID 11211) and group memcache (GID 11211).
#
# It needs neither root nor the machine's package lists: apt keeps its lists
# and downloads in a temporary directory, and reads only the trixie source
# below, checked with the Debian archive keyring. The memcached version is
# pinned; once trixie's updates replace it, the version trixie has is taken,
# with a warning. The cache lives outside the repository so that every clone
# on a machine shares it:
#   ${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}/memcached-rootfs/<version>
#
# Usage:
#   hack/fetch-memcached-rootfs.sh               download what is missing, print the directory last
#   hack/fetch-memcached-rootfs.sh --print-dir   print the directory only
set -euo pipefail

version=1.6.38-1
libraries=(libc6 libevent-2.1-7t64 libsasl2-2 libsasl2-modules-db libdb5.3t64 libssl3t64 libzstd1 zlib1g busybox-static)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

cache_root=${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}
dest="${cache_root}/memcached-rootfs/${version}"

if [[ "${1:-}" == "--print-dir" ]]; then
	echo "${dest}"
	exit 0
fi
if [[ -x "${dest}/usr/bin/memcached" ]]; then
	echo "${dest}"
	exit 0
fi

fail() {
	echo "the memcached image's files could not be provided ($*)" >&2
	exit 1
}
command -v apt-get >/dev/null || fail "apt-get is not available"
command -v dpkg-deb >/dev/null || fail "dpkg-deb is not available"
[[ -r "${keyring}" ]] || fail "${keyring} is missing (Debian package debian-archive-keyring)"

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-memcached-rootfs.XXXXXX")
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/lists/partial" "${work}/cache/archives/partial" "${work}/debs" "${work}/root"
echo "deb [signed-by=${keyring}] ${mirror} trixie main" >"${work}/sources.list"
apt_options=(-o "Dir::Etc::sourcelist=${work}/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=${work}/lists" -o "Dir::Cache=${work}/cache" -o Debug::NoLocking=1 -qq)

apt-get "${apt_options[@]}" update >"${work}/apt.log" 2>&1 || fail "apt-get update failed: $(tail -n 1 "${work}/apt.log")"
if ! apt-cache "${apt_options[@]}" madison memcached | grep -q " ${version} "; then
	available=$(apt-cache "${apt_options[@]}" policy memcached | sed -n 's/^ *Candidate: //p')
	[[ -n "${available}" && "${available}" != "(none)" ]] || fail "trixie has no memcached"
	echo "  memcached image: trixie no longer has memcached ${version}; taking ${available}" >&2
	version=${available}
	dest="${cache_root}/memcached-rootfs/${version}"
	if [[ -x "${dest}/usr/bin/memcached" ]]; then
		echo "${dest}"
		exit 0
	fi
fi
echo "  memcached image: downloading Debian trixie's memcached ${version} into ${dest}" >&2
(cd "${work}/debs" && apt-get "${apt_options[@]}" download "memcached=${version}" "${libraries[@]}") >>"${work}/apt.log" 2>&1 ||
	fail "apt-get download failed: $(tail -n 1 "${work}/apt.log")"
for deb in "${work}"/debs/*.deb; do
	dpkg-deb -x "${deb}" "${work}/root"
done

root="${work}/root"
# trixie's packages install under /usr; the links of a merged-/usr system.
for dir in bin sbin lib lib64; do
	[[ -e "${root}/${dir}" ]] || ln -s "usr/${dir}" "${root}/${dir}"
done
for applet in sh cat mv rm sed date sleep kill printf; do
	[[ -e "${root}/usr/bin/${applet}" ]] || ln -s busybox "${root}/usr/bin/${applet}"
done
mkdir -p "${root}/etc" "${root}/tmp"
chmod 1777 "${root}/tmp"
cat >"${root}/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
memcache:x:11211:11211:memcached:/home/memcache:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"${root}/etc/group" <<EOF
root:x:0:
memcache:x:11211:
nogroup:x:65534:
EOF
mkdir -p "${root}/home/memcache"
[[ -x "${root}/usr/bin/memcached" ]] || fail "the packages hold no memcached"

mkdir -p "$(dirname "${dest}")"
rm -rf "${dest}.partial"
mv "${root}" "${dest}.partial"
mv "${dest}.partial" "${dest}"
echo "${dest}"
