#!/usr/bin/env bash
# Checks that regenerating the generated Go files never depends on the date:
# the header they get, hack/boilerplate.go.txt, has no year placeholder for
# the generators to fill in, and every generated file starts with it as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

boilerplate=hack/boilerplate.go.txt
if grep -q 'YEAR' "${boilerplate}"; then
	echo "${boilerplate} has a YEAR placeholder: the generators would fill in the current year" >&2
	exit 1
fi

status=0
header=$(cat "${boilerplate}")
while IFS= read -r file; do
	# Skip a build constraint line and the blank line after it.
	start=$(sed -n '/^\/\*/{=;q}' "${file}")
	if [[ "$(tail -n "+${start}" "${file}")" != "${header}"* ]]; then
		echo "${file} does not start with ${boilerplate}" >&2
		status=1
	fi
done < <(git ls-files 'api/**zz_generated*.go' 'api/*/applyconfiguration/**.go')
exit "${status}"
