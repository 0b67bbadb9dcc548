package resources

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// newMemcached returns a Memcached with the defaults the API server fills in.
func newMemcached(name string, size int32) *cachev1alpha1.Memcached {
	return &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "cache", UID: types.UID(name + "-uid")},
		Spec: cachev1alpha1.MemcachedSpec{
			Size:                          size,
			Workload:                      cachev1alpha1.WorkloadDeployment,
			MinReadySeconds:               ptr.To[int32](10),
			ScaleDownDrainSeconds:         ptr.To[int32](30),
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			PreStopDelaySeconds:           ptr.To[int32](5),
		},
	}
}

// withSpec returns a Memcached "mc" of size 3 with mutate applied to its spec.
func withSpec(mutate func(*cachev1alpha1.MemcachedSpec)) *cachev1alpha1.Memcached {
	mc := newMemcached("mc", 3)
	mutate(&mc.Spec)
	return mc
}

// inputsFor returns the inputs of a Memcached whose pods all run and that
// reads no Secret.
func inputsFor(mc *cachev1alpha1.Memcached) Inputs {
	return Inputs{Servers: Servers{StatefulSetReplicas: mc.Spec.Size}}
}

// lookup returns the object of kind and name that d applies, decoded into T,
// and nil when d does not apply it.
func lookup[T any](t *testing.T, d Desired, kind Kind, name string) *T {
	t.Helper()
	for _, o := range d.Objects {
		if o.Kind == kind && o.GetName() == name {
			out := new(T)
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
				t.Fatalf("failed to decode %s %s: %v", kind.Kind, name, err)
			}
			return out
		}
	}
	return nil
}

// object is lookup that fails the test when d does not apply the object.
func object[T any](t *testing.T, d Desired, kind Kind, name string) *T {
	t.Helper()
	out := lookup[T](t, d, kind, name)
	if out == nil {
		t.Fatalf("%s %s is not applied", kind.Kind, name)
	}
	return out
}

// absent reports whether d deletes the object of kind and name.
func absent(d Desired, kind Kind, name string) bool {
	for _, r := range d.Absent {
		if r.Kind == kind && r.Name == name {
			return true
		}
	}
	return false
}

// applies reports whether d applies the object of kind and name.
func applies(d Desired, kind Kind, name string) bool {
	for _, o := range d.Objects {
		if o.Kind == kind && o.GetName() == name {
			return true
		}
	}
	return false
}
