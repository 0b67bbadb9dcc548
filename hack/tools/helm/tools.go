//go:build tools

// Package tools pins Helm, whose CLI lints, renders and installs the chart in
// charts/memcached-operator. `make helm` builds it into bin/, and the
// end-to-end test TestHelmChartRendersConfigDefaultAndInstalls runs it (HELM_BINARY).
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
