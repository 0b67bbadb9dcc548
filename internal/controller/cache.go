package controller

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"example.com/memcached-operator/internal/resources"
)

// CacheOptions restricts the manager's informers for the kinds of objects the
// operator creates to the objects labelled as its own, and keeps of each only
// what the operator reads: the metadata, without the fields other managers
// own; of the workloads, also their replicas and status; of a Pod, its
// identity, template and readiness; of a Secret, of which only metadata is
// watched, its identity; of a Memcached, all but its managed fields and
// annotations. The cache then costs memory in proportion to the
// Memcacheds, not to the cluster. Of the optional kinds, only those apis
// has are cached: the cache cannot start with a kind the cluster lacks. With
// namespaces given, only those are watched.
func CacheOptions(apis APIs, namespaces ...string) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{resources.ManagedByLabel: resources.ManagerName})
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                   {Label: managed, Transform: trimPod},
			&corev1.PersistentVolumeClaim{}: {Label: managed, Transform: trimClaim},
			&corev1.Secret{}:                {Transform: trimSecretMetadata},
			newMemcached():                  {Transform: trimMemcached},
		},
	}
	for _, kind := range resources.Kinds {
		if kind.Optional && !apis[kind.GroupVersionKind] {
			continue
		}
		if kind.Full {
			obj, err := clientgoscheme.Scheme.New(kind.GroupVersionKind)
			if err != nil {
				panic(fmt.Sprintf("the scheme lacks %s: %v", kind.GroupVersionKind, err)) // a programming error
			}
			opts.ByObject[obj.(client.Object)] = cache.ByObject{Label: managed, Transform: trimWorkload}
			continue
		}
		opts.ByObject[metadataOnly(kind)] = cache.ByObject{Label: managed, Transform: trimMetadata}
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// ownMetadata returns what the operator reads of an object's metadata: its
// identity, labels, owners and deletion, the annotations it sets, and the
// fields it owns by server-side apply.
func ownMetadata(m *metav1.ObjectMeta) metav1.ObjectMeta {
	kept := metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		Labels:            m.Labels,
		OwnerReferences:   m.OwnerReferences,
		DeletionTimestamp: m.DeletionTimestamp,
	}
	for _, key := range []string{resources.AppliedHashAnnotation, resources.TemplateHashAnnotation} {
		if value, ok := m.Annotations[key]; ok {
			if kept.Annotations == nil {
				kept.Annotations = map[string]string{}
			}
			kept.Annotations[key] = value
		}
	}
	for _, f := range m.ManagedFields {
		// Its applies, and its create, which the API server records as an
		// Update (createObject).
		if f.Manager == resources.ManagerName && f.Subresource == "" &&
			(f.Operation == metav1.ManagedFieldsOperationApply || f.Operation == metav1.ManagedFieldsOperationUpdate) {
			kept.ManagedFields = append(kept.ManagedFields, metav1.ManagedFieldsEntry{Manager: f.Manager, Operation: f.Operation, FieldsV1: f.FieldsV1})
		}
	}
	return kept
}

// trimMetadata keeps of an object of which the operator reads only metadata
// what it reads of it.
func trimMetadata(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: ownMetadata(&m.ObjectMeta)}, nil
}

// trimWorkload keeps of a Deployment or StatefulSet what the operator reads:
// the metadata it reads of every object, the replicas, the names of the
// claim templates and the status.
func trimWorkload(obj any) (any, error) {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return &appsv1.Deployment{
			ObjectMeta: ownMetadata(&w.ObjectMeta),
			Spec:       appsv1.DeploymentSpec{Replicas: w.Spec.Replicas},
			Status:     w.Status,
		}, nil
	case *appsv1.StatefulSet:
		trimmed := &appsv1.StatefulSet{
			ObjectMeta: ownMetadata(&w.ObjectMeta),
			Spec:       appsv1.StatefulSetSpec{Replicas: w.Spec.Replicas},
			Status:     w.Status,
		}
		// Of the claim templates, their names and sizes: which volume each
		// pod must have, and whether it must grow.
		for _, c := range w.Spec.VolumeClaimTemplates {
			trimmed.Spec.VolumeClaimTemplates = append(trimmed.Spec.VolumeClaimTemplates, corev1.PersistentVolumeClaim{
				ObjectMeta: metav1.ObjectMeta{Name: c.Name},
				Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: c.Spec.Resources.Requests[corev1.ResourceStorage]}}},
			})
		}
		return trimmed, nil
	}
	return obj, nil
}

// trimClaim keeps of a PersistentVolumeClaim of a memcached pod what the
// expansion of its volume reads: its metadata, the size it asks for, and its
// phase, capacity and conditions.
func trimClaim(obj any) (any, error) {
	c, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok {
		return obj, nil
	}
	trimmed := &corev1.PersistentVolumeClaim{
		ObjectMeta: ownMetadata(&c.ObjectMeta),
		Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceStorage: c.Spec.Resources.Requests[corev1.ResourceStorage]}}},
		Status: corev1.PersistentVolumeClaimStatus{Phase: c.Status.Phase, Capacity: c.Status.Capacity},
	}
	for _, condition := range c.Status.Conditions {
		trimmed.Status.Conditions = append(trimmed.Status.Conditions,
			corev1.PersistentVolumeClaimCondition{Type: condition.Type, Status: condition.Status})
	}
	return trimmed, nil
}

// trimMemcached drops of a Memcached, cached unstructured, what the operator
// never reads: its managed fields and its annotations, of which kubectl's
// last-applied-configuration is a second copy of the whole object.
func trimMemcached(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	unstructured.RemoveNestedField(u.Object, "metadata", "annotations")
	return u, nil
}

// trimSecretMetadata keeps of a Secret's metadata its identity: the watch
// maps it to the Memcacheds that name it, and its resourceVersion tells
// whether it changed. Annotations go, as kubectl's last-applied annotation
// holds a Secret's data.
func trimSecretMetadata(obj any) (any, error) {
	secret, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta: secret.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:            secret.Name,
			Namespace:       secret.Namespace,
			UID:             secret.UID,
			ResourceVersion: secret.ResourceVersion,
		},
	}, nil
}

// maxMessage bounds the messages of pod conditions and container states kept
// in the cache.
const maxMessage = 256

// trimPod keeps of a Pod the fields the reconciler and its watches read: its
// identity, labels, controller, template digest and deletion, its IP, its
// readiness and scheduling, and the containers that wait for a reason.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	trimmed := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              pod.Name,
			Namespace:         pod.Namespace,
			UID:               pod.UID,
			ResourceVersion:   pod.ResourceVersion,
			Labels:            pod.Labels,
			DeletionTimestamp: pod.DeletionTimestamp,
		},
		Status: corev1.PodStatus{Phase: pod.Status.Phase, PodIP: pod.Status.PodIP},
	}
	if owner := metav1.GetControllerOfNoCopy(pod); owner != nil {
		trimmed.OwnerReferences = []metav1.OwnerReference{{APIVersion: owner.APIVersion, Kind: owner.Kind,
			Name: owner.Name, UID: owner.UID, Controller: owner.Controller}}
	}
	if hash, ok := pod.Annotations[resources.TemplateHashAnnotation]; ok {
		trimmed.Annotations = map[string]string{resources.TemplateHashAnnotation: hash}
	}
	// Of the volumes, the claims: whether the pod has its StatefulSet's.
	for _, v := range pod.Spec.Volumes {
		if c := v.PersistentVolumeClaim; c != nil {
			trimmed.Spec.Volumes = append(trimmed.Spec.Volumes, corev1.Volume{Name: v.Name,
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.ClaimName}}})
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady || c.Type == corev1.PodScheduled {
			trimmed.Status.Conditions = append(trimmed.Status.Conditions, corev1.PodCondition{
				Type: c.Type, Status: c.Status, Reason: c.Reason, Message: truncate(c.Message)})
		}
	}
	trimmed.Status.InitContainerStatuses = waitingContainers(pod.Status.InitContainerStatuses)
	trimmed.Status.ContainerStatuses = waitingContainers(pod.Status.ContainerStatuses)
	return trimmed, nil
}

// waitingContainers keeps of the statuses the containers that wait, and
// why.
func waitingContainers(statuses []corev1.ContainerStatus) []corev1.ContainerStatus {
	var kept []corev1.ContainerStatus
	for _, s := range statuses {
		if w := s.State.Waiting; w != nil && w.Reason != "" {
			kept = append(kept, corev1.ContainerStatus{Name: s.Name, State: corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: w.Reason, Message: truncate(w.Message)}}})
		}
	}
	return kept
}

func truncate(message string) string {
	if len(message) > maxMessage {
		return message[:maxMessage] + "..."
	}
	return message
}
