#!/usr/bin/env bash
# Provides a memcached built with the proxy and its route library, for the
# tests of the proxy tier: Debian trixie's memcached package, pinned by
# version, downloaded with its libraries (glibc included) and unpacked (not
# installed) into a cache directory keyed by that version. It needs neither
# root nor the machine's package lists: apt keeps its lists and downloads in a
# temporary directory, and reads only the trixie source below, checked with
# the Debian archive keyring. Bookworm's memcached (hack/fetch-memcached.sh)
# has no proxy.
#
# trixie's memcached needs glibc 2.38 or later, which bookworm does not have,
# so the wrapper runs it with trixie's dynamic loader and libraries, unpacked
# beside it: ld-linux --library-path <libraries> memcached ...
#
# The cache lives outside the repository so that every clone on a machine
# shares it:
#   ${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}/memcached-proxy/<version>
#
# Usage:
#   hack/fetch-memcached-proxy.sh               download what is missing, print the wrapper's path last
#   hack/fetch-memcached-proxy.sh --print-path  print the wrapper's path only
set -euo pipefail

# The memcached of Debian 13 (trixie), the first built with the proxy. The
# libraries are taken at the version trixie offers.
version=1.6.38-1
libraries=(libc6 libevent-2.1-7t64 libsasl2-2 libsasl2-modules-db libdb5.3t64 libssl3t64 libzstd1 zlib1g)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

cache_root=${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}
dest="${cache_root}/memcached-proxy/${version}"
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
	echo "memcached ${version} with the proxy could not be provided ($*): set MEMCACHED_PROXY_BINARY to a memcached 1.6.38 or later built with --enable-proxy" >&2
	exit 1
}
command -v apt-get >/dev/null || fail "apt-get is not available"
command -v dpkg-deb >/dev/null || fail "dpkg-deb is not available"
[[ -r "${keyring}" ]] || fail "${keyring} is missing (Debian package debian-archive-keyring)"

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-memcached-proxy.XXXXXX")
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/lists/partial" "${work}/cache/archives/partial" "${work}/debs" "${work}/root"
echo "deb [signed-by=${keyring}] ${mirror} trixie main" >"${work}/sources.list"
apt_options=(-o "Dir::Etc::sourcelist=${work}/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=${work}/lists" -o "Dir::Cache=${work}/cache" -o Debug::NoLocking=1 -qq)

echo "  memcached proxy: downloading Debian trixie's memcached ${version} and its libraries into ${dest}" >&2
apt-get "${apt_options[@]}" update >"${work}/apt.log" 2>&1 || fail "apt-get update failed: $(tail -n 1 "${work}/apt.log")"
if ! apt-cache "${apt_options[@]}" madison memcached | grep -q " ${version} "; then
	available=$(apt-cache "${apt_options[@]}" policy memcached | sed -n 's/^ *Candidate: //p')
	fail "trixie no longer has memcached ${version} but ${available:-none}; set version= in $0 to it"
fi
(cd "${work}/debs" && apt-get "${apt_options[@]}" download "memcached=${version}" "${libraries[@]}") >>"${work}/apt.log" 2>&1 ||
	fail "apt-get download failed: $(tail -n 1 "${work}/apt.log")"
for deb in "${work}"/debs/*.deb; do
	dpkg-deb -x "${deb}" "${work}/root"
done

root="${work}/root"
[[ -x "${root}/usr/bin/memcached" ]] || fail "the packages hold no memcached"
multiarch=$(find "${root}/usr/lib" -mindepth 1 -maxdepth 1 -type d -name '*-linux-gnu*' -printf '%f\n' | head -n 1)
[[ -n "${multiarch}" ]] || fail "the packages hold no libraries"
loader=$(find "${root}/usr/lib/${multiarch}" -maxdepth 1 -name 'ld-linux*.so.*' -printf '%f\n' | head -n 1)
[[ -n "${loader}" ]] || fail "libc6 holds no dynamic loader in usr/lib/${multiarch}"
cat >"${root}/memcached" <<EOF
#!/bin/sh
# Runs the memcached ${version} unpacked here with the dynamic loader and
# libraries unpacked beside it (it needs a newer glibc than the machine may have).
here=\$(dirname "\$(readlink -f "\$0")")
exec "\${here}/usr/lib/${multiarch}/${loader}" --library-path "\${here}/usr/lib/${multiarch}" "\${here}/usr/bin/memcached" "\$@"
EOF
chmod 0755 "${root}/memcached"
"${root}/memcached" -V >/dev/null 2>&1 || fail "the unpacked memcached does not run: $("${root}/memcached" -V 2>&1 | head -n 1)"
help=$("${root}/memcached" -h 2>&1 || true)
[[ "${help}" == *proxy_config=routelib* ]] || fail "the unpacked memcached has no proxy with the route library"

mkdir -p "$(dirname "${dest}")"
rm -rf "${dest}.partial"
mv "${root}" "${dest}.partial"
mv "${dest}.partial" "${dest}"
echo "${wrapper}"
