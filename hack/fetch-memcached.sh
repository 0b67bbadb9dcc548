#!/usr/bin/env bash
# Provides a memcached binary for the tests that run the command line the
# operator renders: Debian's memcached package, pinned by version, downloaded
# with its libraries and unpacked (not installed) into a cache directory keyed
# by that version. It needs neither root nor the machine's package lists: apt
# reads the machine's sources but keeps its lists and downloads in the cache.
#
# The cache lives outside the repository so that every clone on a machine
# shares it:
#   ${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}/memcached/<version>
#
# Usage:
#   hack/fetch-memcached.sh               download what is missing, print the binary's path last
#   hack/fetch-memcached.sh --print-path  print the binary's path only
#
# The binary printed is a wrapper that runs memcached with its libraries.
set -euo pipefail

# The memcached of Debian 12 (bookworm). The libraries it links are taken at
# the version the machine's sources offer.
version=1.6.18-1
libraries=(libevent-2.1-7 libsasl2-2 libssl3)

cache_root=${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}
dest="${cache_root}/memcached/${version}"
wrapper="${dest}/memcached"

if [[ "${1:-}" == "--print-path" ]]; then
	echo "${wrapper}"
	exit 0
fi
if [[ -x "${wrapper}" ]]; then
	echo "${wrapper}"
	exit 0
fi

fail() {
	echo "memcached ${version} could not be provided ($*): install Debian's memcached package (apt-get install memcached) or set MEMCACHED_BINARY to a memcached binary" >&2
	exit 1
}

command -v apt-get >/dev/null || fail "apt-get is not available"
command -v dpkg-deb >/dev/null || fail "dpkg-deb is not available"

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-memcached.XXXXXX")
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/lists/partial" "${work}/cache/archives/partial" "${work}/debs" "${work}/root"
apt_options=(-o "Dir::State::Lists=${work}/lists" -o "Dir::Cache=${work}/cache" -o Debug::NoLocking=1 -qq)

echo "  memcached: downloading Debian's memcached ${version} and its libraries into ${dest}" >&2
apt-get "${apt_options[@]}" update >"${work}/apt.log" 2>&1 || fail "apt-get update failed: $(tail -n 1 "${work}/apt.log")"
(cd "${work}/debs" && apt-get "${apt_options[@]}" download "memcached=${version}" "${libraries[@]}") >>"${work}/apt.log" 2>&1 ||
	fail "apt-get download failed: $(tail -n 1 "${work}/apt.log")"
for deb in "${work}"/debs/*.deb; do
	dpkg-deb -x "${deb}" "${work}/root"
done

multiarch=$(find "${work}/root/usr/lib" -mindepth 1 -maxdepth 1 -type d -name '*-linux-gnu' -printf '%f\n' | head -n 1)
[[ -n "${multiarch}" ]] || fail "the packages hold no libraries"
cat >"${work}/root/memcached" <<EOF
#!/bin/sh
# Runs the memcached ${version} unpacked here with the libraries unpacked beside it.
here=\$(dirname "\$(readlink -f "\$0")")
LD_LIBRARY_PATH="\${here}/usr/lib/${multiarch}\${LD_LIBRARY_PATH:+:\${LD_LIBRARY_PATH}}" exec "\${here}/usr/bin/memcached" "\$@"
EOF
chmod 0755 "${work}/root/memcached"
"${work}/root/memcached" -V >/dev/null 2>&1 || fail "the unpacked memcached does not run: $("${work}/root/memcached" -V 2>&1 | head -n 1)"

mkdir -p "$(dirname "${dest}")"
rm -rf "${dest}.partial"
mv "${work}/root" "${dest}.partial"
mv "${dest}.partial" "${dest}"
echo "${wrapper}"
