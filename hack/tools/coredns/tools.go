//go:build tools

// Package tools pins CoreDNS, which serves the cluster domain to the pods of
// the real node. It is built by hack/build-node.sh.
package tools

import (
	_ "github.com/coredns/coredns"
)
