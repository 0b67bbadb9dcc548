#!/usr/bin/env bash
# Renders a kustomize directory of config/ with the operator's image set to
# IMAGE, without editing config/: through a kustomization of its own in a
# temporary directory.
#
# Usage: hack/render.sh <kustomize binary> <config dir> <image>
# IMAGE is repository:tag or repository@sha256:digest.
set -euo pipefail
kustomize=$1
dir=$(cd "$2" && pwd)
image=$3

if [[ "${image}" == *@* ]]; then
	name=${image%@*}
	pin="  digest: ${image#*@}"
elif [[ "${image##*/}" == *:* ]]; then
	name=${image%:*}
	pin="  newTag: ${image##*:}"
else
	name=${image}
	pin=""
fi

overlay=$(mktemp -d)
trap 'rm -rf "${overlay}"' EXIT
ln -s "${dir}" "${overlay}/base"
cat >"${overlay}/kustomization.yaml" <<EOT
resources:
- base
images:
- name: controller
  newName: ${name}
${pin}
EOT
"${kustomize}" build "${overlay}"
