//go:build tools

// Package tools pins Prometheus, whose promtool checks and unit-tests the
// alert rules the operator writes. The Makefile's promtool target builds it.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
