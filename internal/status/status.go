// Package status computes the status of a Memcached from the objects the
// operator observes. Its functions are pure: they read no cluster state.
package status

import (
	"slices"

	corev1 "k8s.io/api/core/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// Compute returns the status of mc after a successful reconcile, given its pods.
func Compute(mc *cachev1alpha1.Memcached, pods []corev1.Pod) cachev1alpha1.MemcachedStatus {
	return cachev1alpha1.MemcachedStatus{
		ObservedGeneration: mc.Generation,
		Nodes:              Nodes(pods),
	}
}

// Nodes returns the sorted names of the pods that are not being deleted, or
// nil when there are none.
func Nodes(pods []corev1.Pod) []string {
	var names []string
	for i := range pods {
		if pods[i].DeletionTimestamp != nil {
			continue
		}
		names = append(names, pods[i].Name)
	}
	slices.Sort(names)
	return names
}
