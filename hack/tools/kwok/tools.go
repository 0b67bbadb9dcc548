//go:build tools

// Package tools pins kwok, which plays the kubelets of the simulated cluster's
// fake nodes. It is built by hack/build-control-plane.sh.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
