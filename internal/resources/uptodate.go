package resources

import (
	"fmt"
	"maps"
	"reflect"

	"k8s.io/apimachinery/pkg/runtime"
)

// UpToDate reports whether actual already holds every field that desired sets,
// with the same value. Fields that desired leaves out, such as defaults filled
// in by the API server or fields of other managers, are not compared.
//
// It lets a reconciler skip an apply request that would change nothing, so that
// a steady state costs the API server nothing.
func UpToDate(desired, actual any) (bool, error) {
	want, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return false, fmt.Errorf("failed to convert the desired object: %w", err)
	}
	have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(actual)
	if err != nil {
		return false, fmt.Errorf("failed to convert the actual object: %w", err)
	}
	// Objects read from a cache carry no type information. The converter
	// returns the very map of an Unstructured: it is not to be changed.
	want = maps.Clone(want)
	delete(want, "apiVersion")
	delete(want, "kind")
	return contains(have, want), nil
}

// contains reports whether have holds want: every key of a map in want is in
// have with a value that contains want's, lists have the same length and
// contain each other element by element, and other values are equal.
func contains(have, want any) bool {
	switch want := want.(type) {
	case map[string]any:
		have, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for key, value := range want {
			if !contains(have[key], value) {
				return false
			}
		}
		return true
	case []any:
		have, ok := have.([]any)
		if !ok || len(have) != len(want) {
			return false
		}
		for i := range want {
			if !contains(have[i], want[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(have, want)
	}
}
