package controller

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"example.com/memcached-operator/internal/resources"
)

// APIs says which of the optional kinds of resources.Kinds the cluster has.
type APIs map[schema.GroupVersionKind]bool

// LookUpAPIs returns which of the optional kinds of resources.Kinds the
// cluster of mapper has.
func LookUpAPIs(mapper meta.RESTMapper) (APIs, error) {
	apis := APIs{}
	for _, kind := range resources.Kinds {
		if !kind.Optional {
			continue
		}
		_, err := mapper.RESTMapping(kind.GroupKind(), kind.Version)
		switch {
		case err == nil:
			apis[kind.GroupVersionKind] = true
		case !meta.IsNoMatchError(err):
			return nil, fmt.Errorf("failed to look up the %s API: %w", kind.Kind, err)
		}
	}
	return apis, nil
}
