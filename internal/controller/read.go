package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	kjson "sigs.k8s.io/json"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/status"
)

// Memcacheds are cached as unstructured objects and decoded one at a time,
// as each is reconciled. A typed cache decodes every Memcached of a list or
// watch at once, and one that Go cannot decode (a Memcached stored before
// the CRD refused its value, say) fails the whole list: the cache would never
// sync, and no Memcached of any namespace would be reconciled again. Cached
// unstructured, an object that does not decode stops only its own reconcile,
// which reports it in its own status.

// newMemcached returns an empty unstructured Memcached, the form in which the
// cache holds Memcacheds.
func newMemcached() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(cachev1alpha1.GroupVersion.WithKind("Memcached"))
	return u
}

// newMemcachedList returns an empty unstructured list of Memcacheds.
func newMemcachedList() *unstructured.UnstructuredList {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(cachev1alpha1.GroupVersion.WithKind("MemcachedList"))
	return list
}

// undecodableError is a Memcached that does not decode into the Go type.
type undecodableError struct {
	obj *unstructured.Unstructured
	err error
}

func (e *undecodableError) Error() string {
	return fmt.Sprintf("the Memcached cannot be read: %v", e.err)
}

func (e *undecodableError) Unwrap() error { return e.err }

// getMemcached reads the Memcached of key from the cache and decodes it. A
// Memcached that does not decode is returned as an *undecodableError.
func (r *MemcachedReconciler) getMemcached(ctx context.Context, key types.NamespacedName) (*cachev1alpha1.Memcached, error) {
	u := newMemcached()
	if err := r.memcacheds.Get(ctx, key, u); err != nil {
		return nil, err
	}
	mc := &cachev1alpha1.Memcached{}
	if err := decode(u.UnstructuredContent(), mc); err != nil {
		if field := firstUndecodable(u.UnstructuredContent()); field != "" {
			err = fmt.Errorf("%s: %w", field, err)
		}
		return nil, &undecodableError{obj: u, err: err}
	}
	return mc, nil
}

// decode decodes content into mc as a typed client decodes a response: from
// JSON, so that a value the Go type cannot hold, such as a number beyond
// int32, is an error and not a value cut short.
func decode(content map[string]any, mc *cachev1alpha1.Memcached) error {
	data, err := json.Marshal(content)
	if err != nil {
		return err
	}
	return kjson.UnmarshalCaseSensitivePreserveInts(data, mc)
}

// firstUndecodable returns the path, such as spec.resources.limits.memory,
// of the first value of content that does not decode on its own, "" when
// each does.
func firstUndecodable(content map[string]any) string {
	var path []string
	node := any(content)
	for {
		var next any
		for _, child := range children(node) {
			trial := keepOnly(content, append(slices.Clone(path), child.key))
			if decode(trial.(map[string]any), &cachev1alpha1.Memcached{}) != nil {
				path, next = append(path, child.key), child.value
				break
			}
		}
		if next == nil {
			return strings.ReplaceAll(strings.Join(path, "."), ".[", "[")
		}
		node = next
	}
}

type child struct {
	key   string // a map's key, or "[i]" for the element i of a list
	value any
}

// children returns the keys of a map in order, or the elements of a list.
func children(node any) []child {
	var kids []child
	switch n := node.(type) {
	case map[string]any:
		for _, key := range slices.Sorted(maps.Keys(n)) {
			kids = append(kids, child{key: key, value: n[key]})
		}
	case []any:
		for i, v := range n {
			kids = append(kids, child{key: fmt.Sprintf("[%d]", i), value: v})
		}
	}
	return kids
}

// keepOnly returns node with, at each level of path, only the child path
// names.
func keepOnly(node any, path []string) any {
	if len(path) == 0 {
		return node
	}
	switch n := node.(type) {
	case map[string]any:
		return map[string]any{path[0]: keepOnly(n[path[0]], path[1:])}
	case []any:
		var i int
		_, _ = fmt.Sscanf(path[0], "[%d]", &i)
		return []any{keepOnly(n[i], path[1:])}
	}
	return node
}

// reportUndecodable tells, in the Degraded condition of the Memcached itself
// and, when that changes, in a Warning event, that its spec cannot be read.
// Its status decodes on its own, as only the operator writes it; the objects
// it owns are left as they are. Retrying cannot help: the fix is a change of
// the spec, and the change brings the next reconcile.
func (r *MemcachedReconciler) reportUndecodable(ctx context.Context, undecodable *undecodableError) error {
	u := undecodable.obj
	current := cachev1alpha1.MemcachedStatus{}
	if content, ok := u.Object["status"].(map[string]any); ok {
		// A status that does not decode either is written anew.
		_ = runtime.DefaultUnstructuredConverter.FromUnstructured(content, &current)
	}
	newStatus := status.Undecodable(current, u.GetGeneration(), undecodable.err, metav1.NewTime(r.clock().Now()))
	named := &cachev1alpha1.Memcached{}
	named.Name, named.Namespace = u.GetName(), u.GetNamespace()
	if size, found, err := unstructured.NestedInt64(u.Object, "spec", "size"); found && err == nil {
		named.Spec.Size = int32(min(max(size, 0), math.MaxInt32))
	}
	// Its gauges say it is degraded; the servers are those last observed.
	recordMetrics(named, &newStatus)
	if equality.Semantic.DeepEqual(current, newStatus) {
		return reconcile.TerminalError(undecodable)
	}
	r.Recorder.Eventf(u, nil, corev1.EventTypeWarning, status.ReasonInvalidSpec, "Decode", "%s", undecodable.Error())
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(status.ApplyConfiguration(named, newStatus))
	if err != nil {
		return fmt.Errorf("failed to encode status: %w", err)
	}
	// Applied unstructured: the API server's answer holds the spec that
	// does not decode.
	applied := client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: content})
	if err := r.Status().Apply(ctx, applied, fieldOwner, client.ForceOwnership); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("failed to apply status: %w", err)
	}
	return reconcile.TerminalError(undecodable)
}
