//go:build tools

// Package tools pins the control-plane commands of the oldest Kubernetes
// release the operator supports, on which `make test-e2e-oldest` runs the
// end-to-end tests. They are built by hack/build-control-plane.sh with
// KUBE_TOOLS=kube-oldest; hack/tools/kube/pin.sh pins this module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
