//go:build tools

// Package tools pins cert-manager's API, from whose Go types `make test-crds`
// generates the Issuer and Certificate CRDs that the end-to-end tests install
// in the simulated cluster, so that the API server checks config/certmanager.
package tools

import (
	_ "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
)
