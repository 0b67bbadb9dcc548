package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// CacheOptions restricts the manager's informers for the kinds of objects the
// operator creates to the objects it manages, strips managed fields from
// every cached object, keeps of a Pod only what the operator reads, and of a
// Secret, of which only metadata is watched, its identity and owners: the
// cache then costs memory in proportion to the Memcacheds, not to the
// cluster. With namespaces given, only those are watched.
func CacheOptions(namespaces ...string) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{resources.ManagedByLabel: resources.ManagerName})
	// ServiceMonitors are left out, as the cluster may not have their API:
	// the cache would fail to start. There are few of them.
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}:            {Label: managed},
			&corev1.Service{}:               {Label: managed},
			&corev1.Pod{}:                   {Label: managed, Transform: trimPod},
			&policyv1.PodDisruptionBudget{}: {Label: managed},
			&networkingv1.NetworkPolicy{}:   {Label: managed},
			&corev1.Secret{}:                {Transform: trimSecretMetadata},
		},
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// trimSecretMetadata keeps of a Secret's metadata what the watches read: its
// identity and owners. Annotations go, as kubectl's last-applied annotation
// holds a Secret's data.
func trimSecretMetadata(obj any) (any, error) {
	secret, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta: secret.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              secret.Name,
			Namespace:         secret.Namespace,
			UID:               secret.UID,
			ResourceVersion:   secret.ResourceVersion,
			Labels:            secret.Labels,
			OwnerReferences:   secret.OwnerReferences,
			DeletionTimestamp: secret.DeletionTimestamp,
		},
	}, nil
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

// secretNameIndex indexes Memcacheds by the names of the Secrets their spec
// names.
const secretNameIndex = "spec.secretNames"

// SetupWithManager registers the reconciler with mgr. It watches Memcacheds,
// the objects they own, their pods and the Secrets they name, and reconciles
// up to maxConcurrentReconciles Memcacheds at once (1 when 0). ServiceMonitors
// are watched when the cluster has their API as the operator starts.
func (r *MemcachedReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, maxConcurrentReconciles int) error {
	r.secrets = &secretReader{cache: r.Client, apiReader: r.APIReader}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &cachev1alpha1.Memcached{}, secretNameIndex, secretNames); err != nil {
		return fmt.Errorf("failed to index Memcacheds by Secret: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrentReconciles}).
		For(&cachev1alpha1.Memcached{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		Watches(&corev1.Secret{},
			handler.EnqueueRequestsFromMapFunc(r.memcachedsNamingSecret),
			builder.OnlyMetadata).
		Watches(&corev1.Pod{},
			handler.EnqueueRequestsFromMapFunc(podToMemcached),
			builder.WithPredicates(podChanged{}))
	if _, err := mgr.GetRESTMapper().RESTMapping(resources.ServiceMonitorGVK.GroupKind(), resources.ServiceMonitorGVK.Version); err == nil {
		serviceMonitor := &unstructured.Unstructured{}
		serviceMonitor.SetGroupVersionKind(resources.ServiceMonitorGVK)
		b = b.Owns(serviceMonitor)
		r.serviceMonitorAPI = true
	} else if !meta.IsNoMatchError(err) {
		return fmt.Errorf("failed to look up the ServiceMonitor API: %w", err)
	}
	return b.Named("memcached").Complete(r)
}

// secretNames returns the names of the Secrets the spec of a Memcached names.
func secretNames(obj client.Object) []string {
	mc, ok := obj.(*cachev1alpha1.Memcached)
	if !ok {
		return nil
	}
	var names []string
	if mc.Spec.Auth != nil {
		names = append(names, mc.Spec.Auth.SecretName)
	}
	if t := mc.Spec.TLS; t != nil {
		names = append(names, t.SecretName)
		if t.ClientCASecretName != "" {
			names = append(names, t.ClientCASecretName)
		}
	}
	return names
}

// memcachedsNamingSecret maps a Secret to the Memcacheds of its namespace
// that name it, so that creating, changing or deleting it reaches them.
func (r *MemcachedReconciler) memcachedsNamingSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	list := &cachev1alpha1.MemcachedList{}
	if err := r.List(ctx, list, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{secretNameIndex: secret.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "Failed to list the Memcacheds naming a Secret", "Secret", klog.KObj(secret))
		return nil
	}
	requests := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return requests
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

// CacheSynced is a readiness check that passes only once the informers of c
// have synced, so that the operator is not counted available, nor sent
// traffic, while it cannot act.
func CacheSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("informer caches have not synced")
		}
		return nil
	}
}
