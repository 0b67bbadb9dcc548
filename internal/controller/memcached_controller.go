// Package controller holds the Memcached reconciler: it applies the objects
// that internal/resources builds and writes the status that internal/status
// computes.
package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// fieldOwner is the field manager of everything the operator applies.
const fieldOwner = client.FieldOwner(resources.ManagerName)

// MemcachedReconciler reconciles a Memcached: it keeps the objects
// internal/resources builds for it as they are built, and reports what it
// observes in the Memcached's status.
type MemcachedReconciler struct {
	client.Client
	// APIReader reads from the API server what the cache does not hold:
	// Secrets, and objects that are not labelled as the operator's.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Clock tells the time: the conditions' transitions and the scale-down
	// drains count from it. The real clock when nil.
	Clock clock.PassiveClock
	// PlatformAssignsUID leaves the memcached pods' user to the platform.
	PlatformAssignsUID bool
	// Images are the images of the Memcacheds that name none.
	Images resources.Images
	// APIs says which optional kinds the cluster had as the operator
	// started: only those are watched and created.
	APIs APIs
	// RunbookBaseURL is where the runbooks of the alerts are;
	// resources.DefaultRunbookBaseURL when empty.
	RunbookBaseURL string

	// memcacheds reads Memcacheds from the cache, where they are held
	// unstructured (read.go); SetupWithManager sets it.
	memcacheds client.Reader
	// secrets reads the Secrets a Memcached names; SetupWithManager sets it.
	secrets *secretDigests
	// fields compares the fields the operator owns with those it applies.
	fields *ownedFields
}

// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds,verbs=get;list;watch
// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds/status,verbs=patch
// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=core,resources=services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=core,resources=configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=core,resources=pods,verbs=list;watch;delete
// +kubebuilder:rbac:groups=core,resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=prometheusrules,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// scope is what one reconcile of a Memcached knows, phase after phase.
type scope struct {
	// memcached is the Memcached as read at the start.
	memcached *cachev1alpha1.Memcached
	// now is the time of the reconcile.
	now metav1.Time
	// observed is what the cache holds of its workloads and pods.
	observed status.Observed
	// servers is the plan of its servers, from what was observed.
	servers resources.Servers
	// digests are those of the Secrets it names, once read.
	digests resources.SecretDigests
	// extstore is what its StatefulSet's extstore volumes are built with,
	// nil without them (volumes.go).
	extstore *extstoreVolumes
	// outcome is what the phases did, or why they stopped.
	outcome status.Outcome
	// created tells that applying created objects, whose events bring the
	// next reconcile.
	created bool
	// namespaceGone is set when its namespace is being deleted: the
	// Memcached goes with it, and nothing is written.
	namespaceGone bool
}

// Reconcile brings the objects a Memcached owns to the state its spec asks
// for, then writes what it observes to its status, once, whatever a phase
// returned.
//
//  1. observe its workloads and pods, from the cache;
//  2. plan its servers: which run, which are listed;
//  3. check its spec and read the Secrets it names (inputs.go);
//  4. grow its extstore volumes when their size grew (volumes.go);
//  5. build the objects it asks for and apply those that differ (apply.go);
//  6. compute its status and write it, unless it is already so (status.go),
//     or unless it created objects without error: their events bring the
//     next reconcile, which writes it.
//
// A spec that no retry can fix stops the reconcile with a terminal error: the
// next change of the Memcached, or of what it names, brings the next one.
func (r *MemcachedReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	mc, err := r.getMemcached(ctx, req.NamespacedName)
	if undecodable, ok := errors.AsType[*undecodableError](err); ok {
		return ctrl.Result{}, r.reportUndecodable(ctx, undecodable)
	}
	switch {
	case apierrors.IsNotFound(err):
		forgetMetrics(req.NamespacedName)
		return ctrl.Result{}, r.deleteWorkloadOfDeleted(ctx, req.NamespacedName)
	case err != nil:
		return ctrl.Result{}, err
	case !mc.DeletionTimestamp.IsZero():
		// The garbage collector deletes what the Memcached owns.
		return ctrl.Result{}, nil
	}

	s := &scope{memcached: mc, now: metav1.NewTime(r.clock().Now())}
	if s.observed, err = r.observe(ctx, mc); err != nil {
		return ctrl.Result{}, err
	}
	s.servers = status.PlanServers(mc, s.observed, s.now)
	defer func() {
		// After creating objects, the status is left to the next
		// reconcile, which their events bring: it then often sees the
		// pods too, so a new Memcached costs one status write fewer.
		err := r.writeStatus(ctx, s, reterr == nil && s.created)
		switch {
		case err == nil:
		case errors.Is(reterr, reconcile.TerminalError(nil)):
			// Retried all the same: the status must say why the spec is
			// refused, and the next reconcile finds that again.
			reterr = err
		default:
			reterr = errors.Join(reterr, err)
		}
	}()

	if err := r.readInputs(ctx, s); err != nil {
		return s.result(err)
	}
	if err := r.expandExtstoreVolumes(ctx, s); err != nil {
		return s.result(err)
	}
	if err := r.apply(ctx, s); err != nil {
		return s.result(err)
	}
	if pod := status.PodWithoutItsVolume(mc, resources.ClaimTemplate(mc, r.inputs(s)), s.observed); pod != nil {
		if err := r.replacePod(ctx, mc, pod); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := s.outcome.ExporterInputError; err != nil {
		if _, ok := errors.AsType[*status.SpecError](err); !ok {
			// A Secret that could not be read is read again; one that is
			// missing or invalid brings a reconcile when it changes.
			return ctrl.Result{}, err
		}
	}
	if err := s.outcome.VolumeExpansionError; err != nil {
		// Retried with backoff: what refuses it, such as the StorageClass,
		// may change without any event reaching the operator.
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: s.servers.RequeueAfter}, nil
}

// replacePod deletes pod, a pod of the StatefulSet of mc that lacks the
// volume of its claim template, for the StatefulSet to create it anew with
// the volume (status.PodWithoutItsVolume says when). The pod's deletion, and
// its successor's readiness, bring the next reconcile.
func (r *MemcachedReconciler) replacePod(ctx context.Context, mc *cachev1alpha1.Memcached, pod *corev1.Pod) error {
	logf.FromContext(ctx).Info("Deleting pod: it lacks the volume of its StatefulSet's claim template, which only a new pod gets",
		"pod", klog.KObj(pod))
	err := r.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("failed to delete pod %s to give it its volume: %w", pod.Name, err)
	}
	r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "Replaced", "Delete",
		"Deleted pod %s for its StatefulSet to create it anew with its volume", pod.Name)
	return nil
}

// result returns what a reconcile that stopped with err asks of the
// controller. A terminal error is not retried; but while pods drain, the end
// of the drain must still bring a reconcile, and controller-runtime ignores
// the result that comes with an error: the drain's requeue wins, and the
// status says why the spec is not applied.
func (s *scope) result(err error) (ctrl.Result, error) {
	if errors.Is(err, reconcile.TerminalError(nil)) && s.servers.RequeueAfter > 0 {
		return ctrl.Result{RequeueAfter: s.servers.RequeueAfter}, nil
	}
	return ctrl.Result{}, err
}

// clock returns r.Clock, or the real clock.
func (r *MemcachedReconciler) clock() clock.PassiveClock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
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
	if mc.Spec.ProxyEnabled() {
		proxy := &appsv1.Deployment{}
		switch err := r.Get(ctx, client.ObjectKey{Namespace: mc.Namespace, Name: resources.ProxyName(mc)}, proxy); {
		case err == nil && metav1.IsControlledBy(proxy, mc):
			observed.ProxyDeployment = proxy
		case err != nil && !apierrors.IsNotFound(err):
			return observed, fmt.Errorf("failed to get the proxies' Deployment: %w", err)
		}
	}
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(mc.Namespace), client.MatchingFields{memcachedIndex: mc.Name},
		client.MatchingLabels(resources.SelectorLabels(mc))); err != nil {
		return observed, fmt.Errorf("failed to list pods: %w", err)
	}
	observed.Pods = pods.Items
	return observed, nil
}

// apply builds the objects the Memcached of s asks for and applies those
// that differ, then records what it did in s.
func (r *MemcachedReconciler) apply(ctx context.Context, s *scope) error {
	mc := s.memcached
	desired := resources.Build(extstoreBuild(mc, s.extstore), r.inputs(s))
	result, err := r.applyDesired(ctx, mc, desired)
	r.tell(ctx, mc, result, err)
	s.useApplied(result)
	s.created = len(result.created) > 0
	s.outcome.ServiceMonitorAPIMissing = result.missingAPIs[resources.ServiceMonitorGVK]
	s.outcome.PrometheusRuleAPIMissing = result.missingAPIs[resources.PrometheusRuleGVK]

	if predecessor, ok := errors.AsType[*predecessorError](err); ok {
		logf.FromContext(ctx).V(1).Info("Waiting for the garbage collector to delete an object of a deleted Memcached of this name",
			"object", predecessor.ref.String())
		s.outcome.WaitingFor = fmt.Sprintf("the garbage collector has deleted %s of a deleted Memcached of this name", predecessor.ref)
		return nil
	}
	if refused, ok := errors.AsType[*status.SpecError](err); ok {
		return r.refuse(s, "Apply", refused)
	}
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		logf.FromContext(ctx).V(1).Info("Not applying: the namespace is being deleted")
		s.namespaceGone = true
		return nil
	case err != nil:
		s.outcome.ApplyError = err
		return err
	}
	return nil
}

// inputs returns what the objects of the Memcached of s are built from,
// besides its spec.
func (r *MemcachedReconciler) inputs(s *scope) resources.Inputs {
	in := resources.Inputs{
		Digests:            s.digests,
		Servers:            s.servers,
		PlatformAssignsUID: r.PlatformAssignsUID,
		Images:             r.Images,
		RunbookBaseURL:     r.RunbookBaseURL,
		ProxiesReady:       s.observed.ProxyDeployment != nil && s.observed.ProxyDeployment.Status.ReadyReplicas > 0,
		HoldExporter:       s.outcome.ExporterInputError != nil,
	}
	if s.extstore != nil {
		in.ExtstoreClaim = s.extstore.claim
	}
	return in
}

// refuse records that the spec of s cannot be applied as it is, and why, in
// a Warning event and in s, and returns it as a terminal error: retrying
// cannot help, and what runs is left as it is.
func (r *MemcachedReconciler) refuse(s *scope, action string, err error) error {
	s.outcome.SpecError = err
	r.Recorder.Eventf(s.memcached, nil, corev1.EventTypeWarning, status.SpecErrorReason(err), action, "%s", err.Error())
	return reconcile.TerminalError(err)
}

// useApplied takes the workloads as the API server answered their apply:
// newer than the cache.
func (s *scope) useApplied(result applied) {
	key := client.ObjectKeyFromObject(s.memcached)
	if d, ok := result.objects[resources.Ref{Kind: resources.DeploymentKind, NamespacedName: key}].(*appsv1.Deployment); ok {
		s.observed.Deployment = d
	}
	if set, ok := result.objects[resources.Ref{Kind: resources.StatefulSetKind, NamespacedName: key}].(*appsv1.StatefulSet); ok {
		s.observed.StatefulSet = set
	}
}

// tell records what applying did as events: what was created in one event,
// so that a new Memcached costs one event write, not one per object, and
// one log line; then the other changes; and an object the Memcached cannot
// take as a Warning.
func (r *MemcachedReconciler) tell(ctx context.Context, mc *cachev1alpha1.Memcached, result applied, applyErr error) {
	if len(result.created) > 0 {
		logf.FromContext(ctx).Info("Created objects", "objects", result.created)
		r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "Created", "Create", "Created %s", strings.Join(result.created, ", "))
	}
	for _, c := range result.changes {
		r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, c.reason, c.action, "%s", c.note)
	}
	if conflict, ok := errors.AsType[*status.ConflictError](applyErr); ok {
		r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, status.ReasonOwnershipConflict, "Apply", "%s", conflict.Error())
	}
}
