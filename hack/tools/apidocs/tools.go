//go:build tools

// Package tools pins crd-ref-docs, which generates docs/api.md, the API
// reference, from the Go types and markers of api/v1alpha1. `make api-docs`
// builds it into bin/ and runs hack/apidocs.sh with it.
package tools

import (
	_ "github.com/elastic/crd-ref-docs"
)
