//go:build tools

// Package tools pins prometheus-operator's monitoring API, from whose Go
// types `make test-crds` generates the ServiceMonitor CRD that the
// end-to-end tests install in the simulated cluster.
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)
