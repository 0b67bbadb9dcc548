#!/usr/bin/env bash
# Provides a memcached built with the proxy and its route library, for the
# tests of the proxy tier, without root: the files of the real node's memcached
# image (hack/fetch-memcached-rootfs.sh: Debian trixie's memcached 1.6.38, the
# first built with the proxy, with trixie's libraries and glibc, unpacked into
# a cache directory), run outside a container by a wrapper script. Bookworm's
# memcached (hack/fetch-memcached.sh) has no proxy.
#
# trixie's memcached needs glibc 2.38 or later, which bookworm does not have,
# so the wrapper runs it with trixie's dynamic loader and libraries, unpacked
# beside it: ld-linux --library-path <libraries> memcached ...
#
# The wrapper lives outside the repository so that every clone on a machine
# shares it:
#   ${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}/memcached-proxy/memcached
#
# Usage:
#   hack/fetch-memcached-proxy.sh               download what is missing, print the wrapper's path last
#   hack/fetch-memcached-proxy.sh --print-path  print the wrapper's path only
set -euo pipefail

cache_root=${MEMCACHED_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/memcached-operator}
wrapper="${cache_root}/memcached-proxy/memcached"

if [[ "${1:-}" == "--print-path" ]]; then
	echo "${wrapper}"
	exit 0
fi

fail() {
	echo "memcached with the proxy could not be provided ($*): set MEMCACHED_PROXY_BINARY to a memcached 1.6.38 or later built with --enable-proxy" >&2
	exit 1
}

root=$("$(dirname "$0")/fetch-memcached-rootfs.sh" | tail -n 1) || fail "hack/fetch-memcached-rootfs.sh failed"
multiarch=$(find "${root}/usr/lib" -mindepth 1 -maxdepth 1 -type d -name '*-linux-gnu*' -printf '%f\n' | head -n 1)
[[ -n "${multiarch}" ]] || fail "${root} holds no libraries"
loader=$(find "${root}/usr/lib/${multiarch}" -maxdepth 1 -name 'ld-linux*.so.*' -printf '%f\n' | head -n 1)
[[ -n "${loader}" ]] || fail "${root} holds no dynamic loader in usr/lib/${multiarch}"

mkdir -p "$(dirname "${wrapper}")"
cat >"${wrapper}.partial" <<EOF
#!/bin/sh
# Runs the memcached of ${root} with the dynamic loader and libraries
# unpacked beside it (it needs a newer glibc than the machine may have).
exec "${root}/usr/lib/${multiarch}/${loader}" --library-path "${root}/usr/lib/${multiarch}" "${root}/usr/bin/memcached" "\$@"
EOF
chmod 0755 "${wrapper}.partial"
"${wrapper}.partial" -V >/dev/null 2>&1 || fail "the unpacked memcached does not run: $("${wrapper}.partial" -V 2>&1 | head -n 1)"
help=$("${wrapper}.partial" -h 2>&1 || true)
[[ "${help}" == *proxy_config=routelib* ]] || fail "the unpacked memcached has no proxy with the route library"
mv "${wrapper}.partial" "${wrapper}"
echo "${wrapper}"
