// Package resources builds the objects a Memcached owns, as server-side apply
// configurations computed from the Memcached and what the operator read for
// it. Its functions are pure: they read no cluster state.
package resources

import (
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// Well-known labels put on every object the operator manages.
const (
	NameLabel      = "app.kubernetes.io/name"
	InstanceLabel  = "app.kubernetes.io/instance"
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ComponentLabel = "app.kubernetes.io/component"

	// AppName is the value of NameLabel on the memcached pods and the
	// objects around them.
	AppName = "memcached"
	// ExporterAppName is the value of NameLabel on the exporter's pods and
	// objects.
	ExporterAppName = "memcached-exporter"
	// ManagerName is the value of ManagedByLabel, and the operator's field owner.
	ManagerName = "memcached-operator"
)

// Annotations the operator puts on the objects it applies.
const (
	// AppliedHashAnnotation is a digest of the configuration the operator
	// last applied to an object. With the fields the operator owns, it tells
	// whether the object still holds that configuration, without comparing
	// the object field by field.
	AppliedHashAnnotation = "cache.example.com/applied-hash"
	// TemplateHashAnnotation is, on a workload, a digest of the pod template
	// the operator last applied: a change of it replaces the pods.
	TemplateHashAnnotation = "cache.example.com/template-hash"
)

// SelectorLabels returns the labels that select the memcached pods of one
// Memcached. They never change for the life of the Memcached, as a
// workload's selector is immutable, and they include the instance so that
// two Memcacheds in one namespace never select each other's pods.
func SelectorLabels(mc *cachev1alpha1.Memcached) map[string]string {
	return map[string]string{
		NameLabel:     AppName,
		InstanceLabel: mc.Name,
	}
}

// Labels returns the labels of every object around the memcached pods of a
// Memcached, the pods included.
func Labels(mc *cachev1alpha1.Memcached) map[string]string {
	labels := SelectorLabels(mc)
	labels[ManagedByLabel] = ManagerName
	return labels
}

// IsManagedBy reports whether labels show an object the operator made for
// the Memcached named instance: the labels every such object carries.
func IsManagedBy(labels map[string]string, instance string) bool {
	return labels[ManagedByLabel] == ManagerName && labels[InstanceLabel] == instance &&
		(labels[NameLabel] == AppName || labels[NameLabel] == ExporterAppName || labels[NameLabel] == ProxyAppName)
}

// ownerReference makes mc the controller of an object, so that deleting mc
// garbage-collects the object.
func ownerReference(mc *cachev1alpha1.Memcached) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(cachev1alpha1.GroupVersion.String()).
		WithKind("Memcached").
		WithName(mc.Name).
		WithUID(mc.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}
