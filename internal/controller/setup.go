package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// CacheOptions restricts the manager's informers for the kinds of objects the
// operator creates to the objects labelled as its own, and keeps of each only
// what the operator reads: the metadata, without the fields other managers
// own; of the workloads, also their replicas and status; of a Pod, its
// identity, template and readiness; of a Secret, of which only metadata is
// watched, its identity. The cache then costs memory in proportion to the
// Memcacheds, not to the cluster. Of the optional kinds, only those apis
// has are cached: the cache cannot start with a kind the cluster lacks. With
// namespaces given, only those are watched.
func CacheOptions(apis APIs, namespaces ...string) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{resources.ManagedByLabel: resources.ManagerName})
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:    {Label: managed, Transform: trimPod},
			&corev1.Secret{}: {Transform: trimSecretMetadata},
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
		if f.Manager == resources.ManagerName && f.Operation == metav1.ManagedFieldsOperationApply && f.Subresource == "" {
			kept.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: f.Manager, Operation: f.Operation, FieldsV1: f.FieldsV1}}
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
// the metadata it reads of every object, the replicas and the status.
func trimWorkload(obj any) (any, error) {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return &appsv1.Deployment{
			ObjectMeta: ownMetadata(&w.ObjectMeta),
			Spec:       appsv1.DeploymentSpec{Replicas: w.Spec.Replicas},
			Status:     w.Status,
		}, nil
	case *appsv1.StatefulSet:
		return &appsv1.StatefulSet{
			ObjectMeta: ownMetadata(&w.ObjectMeta),
			Spec:       appsv1.StatefulSetSpec{Replicas: w.Spec.Replicas},
			Status:     w.Status,
		}, nil
	}
	return obj, nil
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

// secretNameIndex indexes Memcacheds by the names of the Secrets their spec
// names.
const secretNameIndex = "spec.secretNames"

// podPriority is the priority of the reconciles a pod change asks for: they
// can complete a Memcached's status, so they go before the work of creating
// new Memcacheds, whose own reconciles have the default priority, 0.
const podPriority = 10

// SetupWithManager registers the reconciler with mgr. It watches Memcacheds,
// the objects they own, their pods and the Secrets they name, and reconciles
// up to maxConcurrentReconciles Memcacheds at once (1 when 0). The kinds of
// optional APIs, such as ServiceMonitors, are watched when the cluster had
// them as the operator started (r.APIs).
func (r *MemcachedReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, maxConcurrentReconciles int) error {
	r.memcacheds = mgr.GetCache()
	r.secrets = &secretDigests{cache: r.Client, apiReader: r.APIReader}
	r.fields = newOwnedFields(mgr.GetScheme())
	if err := mgr.GetFieldIndexer().IndexField(ctx, newMemcached(), secretNameIndex, secretNames); err != nil {
		return fmt.Errorf("failed to index Memcacheds by Secret: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrentReconciles, UsePriorityQueue: ptr.To(true)}).
		For(newMemcached())
	for _, kind := range resources.Kinds {
		if kind.Optional && !r.APIs[kind.GroupVersionKind] {
			continue
		}
		if kind.Full {
			obj, err := mgr.GetScheme().New(kind.GroupVersionKind)
			if err != nil {
				return fmt.Errorf("the scheme lacks %s: %w", kind.GroupVersionKind, err)
			}
			b = b.Owns(obj.(client.Object))
			continue
		}
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(kind.GroupVersionKind)
		b = b.Owns(obj, builder.OnlyMetadata)
	}
	return b.
		Watches(&corev1.Secret{},
			handler.EnqueueRequestsFromMapFunc(r.memcachedsNamingSecret),
			builder.OnlyMetadata).
		Watches(&corev1.Pod{},
			withPriority(handler.EnqueueRequestsFromMapFunc(podToMemcached), podPriority),
			builder.WithPredicates(podChanged{})).
		Named("memcached").
		Complete(r)
}

// secretFields are the fields of a Memcached that name a Secret.
var secretFields = []string{"spec.auth.secretName", "spec.tls.secretName", "spec.tls.clientCASecretName"}

// secretNames returns the names of the Secrets the spec of a Memcached, as
// the cache holds it, names.
func secretNames(obj client.Object) []string {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	var names []string
	for _, field := range secretFields {
		if name, _, _ := unstructured.NestedString(u.Object, strings.Split(field, ".")...); name != "" {
			names = append(names, name)
		}
	}
	return names
}

// memcachedsNamingSecret maps a Secret to the Memcacheds of its namespace
// that name it, so that creating, changing or deleting it reaches them. What
// is kept of a Secret that none names goes.
func (r *MemcachedReconciler) memcachedsNamingSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	list := newMemcachedList()
	if err := r.memcacheds.List(ctx, list, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{secretNameIndex: secret.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "Failed to list the Memcacheds naming a Secret", "Secret", klog.KObj(secret))
		return nil
	}
	if len(list.Items) == 0 {
		r.secrets.forget(client.ObjectKeyFromObject(secret))
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
// change a Memcached's status: its labels, its deletion, its readiness, its
// IP, its scheduling or a container that waits. Other updates are frequent
// and change nothing the operator reports.
type podChanged struct {
	predicate.Funcs
}

func (podChanged) Update(e event.UpdateEvent) bool {
	oldPod, okOld := e.ObjectOld.(*corev1.Pod)
	newPod, okNew := e.ObjectNew.(*corev1.Pod)
	if !okOld || !okNew {
		return true
	}
	oldReason, _ := status.PodProblem(oldPod)
	newReason, _ := status.PodProblem(newPod)
	return !labels.Equals(oldPod.Labels, newPod.Labels) ||
		oldPod.DeletionTimestamp.IsZero() != newPod.DeletionTimestamp.IsZero() ||
		status.IsReady(oldPod) != status.IsReady(newPod) ||
		oldPod.Status.PodIP != newPod.Status.PodIP ||
		oldReason != newReason
}

// withPriority gives the requests h adds the given priority, when the
// controller's queue is a priority queue.
func withPriority(h handler.EventHandler, priority int) handler.EventHandler {
	return &prioritized{EventHandler: h, priority: priority}
}

type prioritized struct {
	handler.EventHandler
	priority int
}

type requestQueue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func (p *prioritized) Create(ctx context.Context, e event.CreateEvent, q requestQueue) {
	p.EventHandler.Create(ctx, e, p.queue(q))
}

func (p *prioritized) Update(ctx context.Context, e event.UpdateEvent, q requestQueue) {
	p.EventHandler.Update(ctx, e, p.queue(q))
}

func (p *prioritized) Delete(ctx context.Context, e event.DeleteEvent, q requestQueue) {
	p.EventHandler.Delete(ctx, e, p.queue(q))
}

func (p *prioritized) Generic(ctx context.Context, e event.GenericEvent, q requestQueue) {
	p.EventHandler.Generic(ctx, e, p.queue(q))
}

func (p *prioritized) queue(q requestQueue) requestQueue {
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		return priorityQueue{PriorityQueue: pq, priority: p.priority}
	}
	return q
}

// priorityQueue adds requests with a priority.
type priorityQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
	priority int
}

func (q priorityQueue) Add(item reconcile.Request) {
	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(q.priority)}, item)
}

func (q priorityQueue) AddRateLimited(item reconcile.Request) {
	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(q.priority), RateLimited: true}, item)
}

func (q priorityQueue) AddAfter(item reconcile.Request, duration time.Duration) {
	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(q.priority), After: duration}, item)
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
