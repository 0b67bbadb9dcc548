//go:build tools

// Package tools pins memcached_exporter, which the real node runs in the
// exporter image. It is built by hack/build-node.sh.
package tools

import (
	_ "github.com/prometheus/memcached_exporter/cmd/memcached_exporter"
)
