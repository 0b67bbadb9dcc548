package controller

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// CacheOptions restricts the manager's informers for Deployments, Services
// and Pods to the objects this operator manages, strips managed fields from
// every cached object and keeps of a Pod only what the operator reads: the
// cache then costs memory in proportion to the Memcacheds, not to the cluster.
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{resources.ManagedByLabel: resources.ManagerName})
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Label: managed},
			&corev1.Service{}:    {Label: managed},
			&corev1.Pod{}:        {Label: managed, Transform: trimPod},
		},
	}
}

// trimPod keeps of a Pod the fields the reconciler and its watches read: its
// identity, labels and deletion, its IP and its readiness.
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
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			trimmed.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return trimmed, nil
}

// SetupWithManager registers the reconciler with mgr. It watches Memcacheds,
// the Deployments and Services they own and their pods, and reconciles up to
// maxConcurrentReconciles Memcacheds at once (1 when 0).
func (r *MemcachedReconciler) SetupWithManager(mgr ctrl.Manager, maxConcurrentReconciles int) error {
	return ctrl.NewControllerManagedBy(mgr).
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrentReconciles}).
		For(&cachev1alpha1.Memcached{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Watches(&corev1.Pod{},
			handler.EnqueueRequestsFromMapFunc(podToMemcached),
			builder.WithPredicates(podChanged{})).
		Named("memcached").
		Complete(r)
}

// podToMemcached maps a memcached pod to the Memcached it belongs to.
func podToMemcached(_ context.Context, pod client.Object) []reconcile.Request {
	podLabels := pod.GetLabels()
	name, ok := podLabels[resources.InstanceLabel]
	if !ok || podLabels[resources.NameLabel] != resources.AppName {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: pod.GetNamespace(), Name: name}}}
}

// podChanged passes pod creations and deletions, and the updates that can
// change a Memcached's status: its labels, its deletion, its readiness or its IP.
// Other updates are frequent and change nothing the operator reports.
type podChanged struct {
	predicate.Funcs
}

func (podChanged) Update(e event.UpdateEvent) bool {
	oldPod, okOld := e.ObjectOld.(*corev1.Pod)
	newPod, okNew := e.ObjectNew.(*corev1.Pod)
	if !okOld || !okNew {
		return true
	}
	return !labels.Equals(oldPod.Labels, newPod.Labels) ||
		oldPod.DeletionTimestamp.IsZero() != newPod.DeletionTimestamp.IsZero() ||
		isReady(oldPod) != isReady(newPod) ||
		oldPod.Status.PodIP != newPod.Status.PodIP
}

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
