// Package controller holds the Memcached reconciler: it applies the objects
// that internal/resources builds and writes the status that internal/status
// computes.
package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// fieldOwner is the field manager of everything the operator applies.
const fieldOwner = client.FieldOwner(resources.ManagerName)

// Reasons of the MonitoringReady condition.
const (
	ReasonServiceMonitorReady      = "ServiceMonitorReady"
	ReasonServiceMonitorAPIMissing = "ServiceMonitorAPIMissing"
)

// MemcachedReconciler reconciles a Memcached: it keeps the objects
// internal/resources builds for it as they are built, and reports what it
// observes in the Memcached's status.
type MemcachedReconciler struct {
	client.Client
	// APIReader reads from the API server what the cache does not hold:
	// Secrets, and objects that are not labelled as the operator's.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// PlatformAssignsUID leaves the memcached pods' user to the platform.
	PlatformAssignsUID bool
	// Images are the images of the Memcacheds that name none.
	Images resources.Images
	// APIs says which optional kinds the cluster had as the operator
	// started: only those are watched and created.
	APIs APIs

	// memcacheds reads Memcacheds from the cache, where they are held
	// unstructured (read.go); SetupWithManager sets it.
	memcacheds client.Reader
	// secrets reads the Secrets a Memcached names; SetupWithManager sets it.
	secrets *secretDigests
	// fields compares the fields the operator owns with those it applies.
	fields *ownedFields

	// written holds, by Memcached, the status last written (a writtenStatus),
	// for the reconciles that run before the cache has seen that write.
	written sync.Map
}

// writtenStatus is a status the reconciler wrote: the Memcached had
// resourceVersion before when it was read, and after once written.
type writtenStatus struct {
	before, after string
	status        cachev1alpha1.MemcachedStatus
}

// predates tells whether a Memcached of resourceVersion rv, as the cache
// holds it, was read before the write: a cache that has not caught up yet
// may still hold an older status than before, also one this reconciler wrote
// itself.
func (w writtenStatus) predates(rv string) bool {
	if rv == w.before {
		return true
	}
	cmp, err := resourceversion.CompareResourceVersion(rv, w.after)
	return err == nil && cmp < 0
}

// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds,verbs=get;list;watch
// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds/status,verbs=patch
// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=core,resources=services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=core,resources=configmaps,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=core,resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups=core,resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings the objects a Memcached owns to the state its spec asks
// for, then writes what it observes to its status, once.
func (r *MemcachedReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc, err := r.getMemcached(ctx, req.NamespacedName)
	if undecodable, ok := errors.AsType[*undecodableError](err); ok {
		return ctrl.Result{}, r.reportUndecodable(ctx, undecodable)
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Delete(req.NamespacedName)
			return ctrl.Result{}, r.deleteWorkloadOfDeleted(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	r.recallStatus(mc)
	if !mc.DeletionTimestamp.IsZero() {
		// The garbage collector deletes what the Memcached owns.
		return ctrl.Result{}, nil
	}

	observed, err := r.observe(ctx, mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := metav1.Now()
	servers := status.PlanServers(mc, observed, now)

	digests, specErr, err := r.readInputs(ctx, mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	observed.Monitoring = meta.FindStatusCondition(mc.Status.Conditions, cachev1alpha1.ConditionMonitoringReady)
	if specErr != nil {
		// Nothing is applied: the pods running the last valid spec stay.
		observed.SpecError = specErr
		r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, status.SpecErrorReason(specErr), "Validate", "%s", specErr.Error())
	} else {
		desired := resources.Build(mc, resources.Inputs{
			Digests:                digests,
			StatefulSetReplicas:    servers.StatefulSetReplicas,
			Servers:                servers.List,
			RetirePreviousWorkload: servers.RetirePreviousWorkload,
			PlatformAssignsUID:     r.PlatformAssignsUID,
			Images:                 r.Images,
		})
		result, applyErr := r.applyDesired(ctx, mc, desired)
		if apierrors.HasStatusCause(applyErr, corev1.NamespaceTerminatingCause) {
			// The namespace's deletion takes the Memcached with it.
			logf.FromContext(ctx).V(1).Info("Not applying: the namespace is being deleted")
			return ctrl.Result{}, nil
		}
		if predecessor, ok := errors.AsType[*predecessorError](applyErr); ok {
			logf.FromContext(ctx).V(1).Info("Waiting for the garbage collector to delete an object of a deleted Memcached of this name",
				"object", predecessor.ref.String())
			observed.WaitingFor = fmt.Sprintf("the garbage collector has deleted %s of a deleted Memcached of this name", predecessor.ref)
			applyErr = nil
		}
		if refused, ok := errors.AsType[*status.SpecError](applyErr); ok {
			// Retrying cannot help: the Memcached's next change brings the
			// next reconcile.
			observed.SpecError, applyErr = refused, nil
			r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, refused.Reason, "Apply", "%s", refused.Error())
		}
		r.tell(mc, result, applyErr)
		observed.ApplyError = applyErr
		r.useApplied(mc, &observed, result)
		if applyErr == nil && observed.SpecError == nil {
			observed.Monitoring = monitoringCondition(mc, result)
		}
	}

	newStatus := status.Compute(mc, observed, servers, now)
	if err := r.writeStatus(ctx, mc, newStatus); err != nil {
		return ctrl.Result{}, errors.Join(observed.ApplyError, err)
	}
	return ctrl.Result{RequeueAfter: servers.RequeueAfter}, observed.ApplyError
}

// observe reads the workloads and pods of mc from the cache.
func (r *MemcachedReconciler) observe(ctx context.Context, mc *cachev1alpha1.Memcached) (status.Observed, error) {
	var observed status.Observed
	key := client.ObjectKeyFromObject(mc)
	deployment := &appsv1.Deployment{}
	switch err := r.Get(ctx, key, deployment); {
	case err == nil && metav1.IsControlledBy(deployment, mc):
		observed.Deployment = deployment
	case err != nil && !apierrors.IsNotFound(err):
		return observed, fmt.Errorf("failed to get Deployment: %w", err)
	}
	statefulSet := &appsv1.StatefulSet{}
	switch err := r.Get(ctx, key, statefulSet); {
	case err == nil && metav1.IsControlledBy(statefulSet, mc):
		observed.StatefulSet = statefulSet
	case err != nil && !apierrors.IsNotFound(err):
		return observed, fmt.Errorf("failed to get StatefulSet: %w", err)
	}
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(mc.Namespace), client.MatchingLabels(resources.SelectorLabels(mc))); err != nil {
		return observed, fmt.Errorf("failed to list pods: %w", err)
	}
	observed.Pods = pods.Items
	return observed, nil
}

// useApplied takes the workloads as the API server answered their apply:
// newer than the cache.
func (r *MemcachedReconciler) useApplied(mc *cachev1alpha1.Memcached, observed *status.Observed, result applied) {
	key := client.ObjectKeyFromObject(mc)
	if d, ok := result.objects[resources.Ref{Kind: resources.DeploymentKind, NamespacedName: key}].(*appsv1.Deployment); ok {
		observed.Deployment = d
	}
	if s, ok := result.objects[resources.Ref{Kind: resources.StatefulSetKind, NamespacedName: key}].(*appsv1.StatefulSet); ok {
		observed.StatefulSet = s
	}
}

// tell records what applying did as events: what was created in one event,
// so that a new Memcached costs one event write, not one per object; then
// the other changes; and an object the Memcached cannot take as a Warning.
func (r *MemcachedReconciler) tell(mc *cachev1alpha1.Memcached, result applied, applyErr error) {
	if len(result.created) > 0 {
		r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "Created", "Create", "Created %s", strings.Join(result.created, ", "))
	}
	for _, c := range result.changes {
		r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, c.reason, c.action, "%s", c.note)
	}
	if conflict, ok := errors.AsType[*status.ConflictError](applyErr); ok {
		r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, status.ReasonOwnershipConflict, "Apply", "%s", conflict.Error())
	}
}

// monitoringCondition returns the MonitoringReady condition of mc, nil when
// monitoring is not enabled. A cluster without the ServiceMonitor API is not
// an error: the condition says so, and the exporter runs all the same.
func monitoringCondition(mc *cachev1alpha1.Memcached, result applied) *metav1.Condition {
	if mc.Spec.Monitoring == nil || !mc.Spec.Monitoring.Enabled {
		return nil
	}
	if result.missingAPIs[resources.ServiceMonitorGVK] {
		return &metav1.Condition{Status: metav1.ConditionFalse, Reason: ReasonServiceMonitorAPIMissing,
			Message: fmt.Sprintf("The cluster has no monitoring.coreos.com/v1 ServiceMonitor API, so no ServiceMonitor was created; "+
				"the exporter serves every memcached pod's metrics at %s:%d%s?target=<pod address>:11211 all the same. "+
				"Install prometheus-operator's CRDs, then restart the operator",
				resources.ExporterName(mc), resources.MetricsPort, resources.ScrapePath)}
	}
	return &metav1.Condition{Status: metav1.ConditionTrue, Reason: ReasonServiceMonitorReady,
		Message: fmt.Sprintf("ServiceMonitor %s has Prometheus scrape every memcached pod through the exporter %s",
			mc.Name, resources.ExporterName(mc))}
}

// recallStatus gives mc, as read from the cache, the status last written
// when the cache has not seen that write yet, so that a reconcile running
// meanwhile does not write it again.
func (r *MemcachedReconciler) recallStatus(mc *cachev1alpha1.Memcached) {
	key := client.ObjectKeyFromObject(mc)
	w, ok := r.written.Load(key)
	if !ok {
		return
	}
	if w := w.(writtenStatus); w.predates(mc.ResourceVersion) {
		mc.Status = *w.status.DeepCopy()
		return
	}
	r.written.Delete(key)
}

// writeStatus applies newStatus unless mc already has it.
func (r *MemcachedReconciler) writeStatus(ctx context.Context, mc *cachev1alpha1.Memcached, newStatus cachev1alpha1.MemcachedStatus) error {
	if equality.Semantic.DeepEqual(mc.Status, newStatus) {
		return nil
	}
	logf.FromContext(ctx).V(1).Info("Updating status", "old", mc.Status, "new", newStatus)
	applied := status.ApplyConfiguration(mc, newStatus)
	if err := r.Status().Apply(ctx, applied, fieldOwner, client.ForceOwnership); err != nil {
		// A Memcached deleted since it was read has no status to write.
		return client.IgnoreNotFound(fmt.Errorf("failed to apply status: %w", err))
	}
	r.written.Store(client.ObjectKeyFromObject(mc), writtenStatus{
		before: mc.ResourceVersion,
		after:  ptr.Deref(applied.ResourceVersion, ""),
		status: newStatus,
	})
	return nil
}
