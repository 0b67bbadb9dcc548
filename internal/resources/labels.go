// Package resources builds the objects a Memcached owns, as server-side apply
// configurations computed from the Memcached alone.
package resources

import (
	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// Well-known labels put on every object the operator manages.
const (
	NameLabel      = "app.kubernetes.io/name"
	InstanceLabel  = "app.kubernetes.io/instance"
	ManagedByLabel = "app.kubernetes.io/managed-by"

	// AppName is the value of NameLabel.
	AppName = "memcached"
	// ManagerName is the value of ManagedByLabel, and the operator's field owner.
	ManagerName = "memcached-operator"
)

// SelectorLabels returns the labels that select the pods of one Memcached.
// They never change for the life of the Memcached, as a Deployment's selector
// is immutable, and they include the instance so that two Memcacheds in one
// namespace never select each other's pods.
func SelectorLabels(mc *cachev1alpha1.Memcached) map[string]string {
	return map[string]string{
		NameLabel:     AppName,
		InstanceLabel: mc.Name,
	}
}

// Labels returns the labels of every object a Memcached owns, its pods included.
func Labels(mc *cachev1alpha1.Memcached) map[string]string {
	labels := SelectorLabels(mc)
	labels[ManagedByLabel] = ManagerName
	return labels
}
