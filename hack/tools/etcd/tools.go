//go:build tools

// Package tools pins etcd, the store behind the simulated cluster's and
// envtest's kube-apiserver. It is built by hack/build-control-plane.sh.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
