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
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// fieldOwner is the field manager of everything the operator applies.
const fieldOwner = client.FieldOwner(resources.ManagerName)

// MemcachedReconciler reconciles a Memcached: it keeps the Deployment of
// memcached pods and the two Services in front of them as internal/resources
// describes them, and reports what it observes in the Memcached's status.
type MemcachedReconciler struct {
	client.Client
	// APIReader reads Secrets from the API server: the cache holds only their
	// metadata, so that the operator does not keep every Secret of the
	// cluster in memory.
	APIReader client.Reader
	Recorder  events.EventRecorder

	// secrets reads the Secrets a Memcached names or owns, through APIReader
	// only when they changed; SetupWithManager sets it.
	secrets *secretReader
	// serviceMonitorAPI is whether the cluster had the ServiceMonitor API
	// when SetupWithManager ran.
	serviceMonitorAPI bool

	// written holds, by Memcached, the status last written (a writtenStatus),
	// for the reconciles that run before the cache has seen that write.
	written sync.Map
}

// writtenStatus is a status the reconciler wrote over a Memcached of
// resourceVersion before.
type writtenStatus struct {
	before string
	status cachev1alpha1.MemcachedStatus
}

// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds,verbs=get;list;watch
// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds/status,verbs=patch
// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=core,resources=services,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=core,resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups=core,resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings the objects a Memcached owns to the state its spec asks
// for, then writes what it observes to its status, once.
func (r *MemcachedReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &cachev1alpha1.Memcached{}
	if err := r.Get(ctx, req.NamespacedName, mc); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.recallStatus(mc)
	if !mc.DeletionTimestamp.IsZero() {
		// The garbage collector deletes what the Memcached owns.
		return ctrl.Result{}, nil
	}

	var (
		deployment        *appsv1.Deployment
		monitoring        *metav1.Condition
		specErr, applyErr error
	)
	in, specErr, err := r.readInputs(ctx, mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	if specErr != nil {
		// Nothing is applied: the pods running the last valid spec stay.
		r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, status.SpecErrorReason(specErr), "Validate", "%s", specErr.Error())
		deployment, applyErr = r.cachedDeployment(ctx, mc)
		monitoring = meta.FindStatusCondition(mc.Status.Conditions, cachev1alpha1.ConditionMonitoringReady)
	} else {
		deployment, applyErr = r.applyObjects(ctx, mc, in)
		if applyErr == nil {
			monitoring, applyErr = r.applyServiceMonitor(ctx, mc)
		}
		if applyErr != nil {
			// The condition stays until the ServiceMonitor is settled.
			monitoring = meta.FindStatusCondition(mc.Status.Conditions, cachev1alpha1.ConditionMonitoringReady)
		}
	}
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(mc.Namespace), client.MatchingLabels(resources.SelectorLabels(mc))); err != nil {
		return ctrl.Result{}, errors.Join(applyErr, fmt.Errorf("failed to list pods: %w", err))
	}
	newStatus := status.Compute(mc, status.Observed{
		Deployment: deployment, Pods: pods.Items, SpecError: specErr, ApplyError: applyErr, Monitoring: monitoring,
	}, metav1.Now())

	return ctrl.Result{}, errors.Join(applyErr, r.writeStatus(ctx, mc, newStatus))
}

// applyObjects applies the objects of mc where they lack what the operator
// sets, deletes those that mc no longer asks for, and returns the Deployment
// as last seen: from the cache, or from the API server's answer to the
// apply; nil if there is none.
func (r *MemcachedReconciler) applyObjects(ctx context.Context, mc *cachev1alpha1.Memcached, in inputs) (*appsv1.Deployment, error) {
	// What was created is told in one event, so that a new Memcached costs
	// one event write, not one per object.
	var created []string
	defer func() {
		if len(created) > 0 {
			r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "Created", "Create", "Created %s", strings.Join(created, ", "))
		}
	}()

	// The auth file comes first: the pods cannot start without it.
	authKey := client.ObjectKey{Namespace: mc.Namespace, Name: resources.AuthSecretName(mc)}
	if in.authFile != nil {
		current := &corev1.Secret{}
		isNew, err := r.ensure(ctx, r.secrets, authKey, current, resources.AuthSecret(mc, in.authFile))
		if err != nil {
			return nil, err
		}
		// As applied, when it was: the next reconcile need not read it again.
		r.secrets.Remember(current)
		if isNew {
			created = append(created, "Secret "+authKey.Name)
		}
	}

	desired := resources.Deployment(mc, in.hashes)
	deployment := &appsv1.Deployment{}
	existed, upToDate, err := r.compare(ctx, r.Client, client.ObjectKeyFromObject(mc), deployment, desired)
	if err != nil {
		return nil, err
	}
	if !upToDate {
		changes := deploymentChanges(mc, existed, deployment, desired)
		if err := r.apply(ctx, existed, desired, deployment); err != nil {
			if !existed {
				return nil, err
			}
			return deployment, err
		}
		if !existed {
			created = append(created, fmt.Sprintf("Deployment %s with %d replicas", mc.Name, mc.Spec.Size))
		}
		for _, e := range changes {
			r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, e.reason, e.action, "%s", e.note)
		}
	}

	for _, desired := range []*corev1ac.ServiceApplyConfiguration{resources.Service(mc), resources.HeadlessService(mc)} {
		isNew, err := r.ensure(ctx, r.Client, client.ObjectKey{Namespace: mc.Namespace, Name: *desired.Name}, &corev1.Service{}, desired)
		if err != nil {
			return deployment, err
		}
		if isNew {
			created = append(created, "Service "+*desired.Name)
		}
	}

	// The PodDisruptionBudget and the NetworkPolicy are named after mc, and
	// exist only when mc asks for them.
	pdb, np := resources.PodDisruptionBudget(mc), resources.NetworkPolicy(mc)
	for _, o := range []struct {
		current client.Object
		desired runtime.ApplyConfiguration
		wanted  bool
	}{
		{&policyv1.PodDisruptionBudget{}, pdb, pdb != nil},
		{&networkingv1.NetworkPolicy{}, np, np != nil},
	} {
		key := client.ObjectKeyFromObject(mc)
		if !o.wanted {
			if err := r.deleteOwned(ctx, mc, key, o.current); err != nil {
				return deployment, err
			}
			continue
		}
		isNew, err := r.ensure(ctx, r.Client, key, o.current, o.desired)
		if err != nil {
			return deployment, err
		}
		if isNew {
			created = append(created, r.kindOf(o.current)+" "+mc.Name)
		}
	}
	if in.authFile == nil {
		// Only the metadata of Secrets is cached.
		secret := &metav1.PartialObjectMetadata{}
		secret.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := r.deleteOwned(ctx, mc, authKey, secret); err != nil {
			return deployment, err
		}
	}
	return deployment, nil
}

// getter reads one object: the cache, the API server, or the secretReader.
type getter interface {
	Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error
}

// ensure applies desired unless the object at key, read with reader into
// current, already holds all of it, and reports whether it created it.
func (r *MemcachedReconciler) ensure(ctx context.Context, reader getter, key client.ObjectKey,
	current client.Object, desired runtime.ApplyConfiguration) (created bool, err error) {
	existed, upToDate, err := r.compare(ctx, reader, key, current, desired)
	if err != nil || upToDate {
		return false, err
	}
	if err := r.apply(ctx, existed, desired, current); err != nil {
		return false, err
	}
	return !existed, nil
}

// deleteOwned deletes the object at key, read from the cache into obj, if mc
// controls it.
func (r *MemcachedReconciler) deleteOwned(ctx context.Context, mc *cachev1alpha1.Memcached, key client.ObjectKey, obj client.Object) error {
	if err := r.Get(ctx, key, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, mc) {
		return nil
	}
	kind := r.kindOf(obj)
	logf.FromContext(ctx).Info("Deleting "+kind, kind, klog.KObj(obj))
	if err := r.Delete(ctx, obj, client.Preconditions{UID: ptr.To(obj.GetUID())}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("failed to delete %s %s: %w", kind, key.Name, err)
	}
	r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "Deleted", "Delete", "Deleted %s %s: the spec no longer asks for it", kind, key.Name)
	return nil
}

// cachedDeployment returns the Deployment of mc as the cache has it, nil if
// there is none.
func (r *MemcachedReconciler) cachedDeployment(ctx context.Context, mc *cachev1alpha1.Memcached) (*appsv1.Deployment, error) {
	deployment := &appsv1.Deployment{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(mc), deployment); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("failed to get Deployment: %w", err)
	}
	return deployment, nil
}

// compare reads the object at key with reader into current, and reports
// whether it exists and whether it already holds every field of desired.
func (r *MemcachedReconciler) compare(ctx context.Context, reader getter, key client.ObjectKey,
	current client.Object, desired any) (existed, upToDate bool, err error) {
	if err := reader.Get(ctx, key, current); err != nil {
		if apierrors.IsNotFound(err) {
			return false, false, nil
		}
		return false, false, fmt.Errorf("failed to get %s: %w", key.Name, err)
	}
	upToDate, err = resources.UpToDate(desired, current)
	if err != nil {
		return true, false, fmt.Errorf("failed to compare %s: %w", key.Name, err)
	}
	return true, upToDate, nil
}

// apply applies desired with server-side apply and stores the object the API
// server answers with in applied.
func (r *MemcachedReconciler) apply(ctx context.Context, existed bool, desired runtime.ApplyConfiguration, applied client.Object) error {
	kind := r.kindOf(applied)
	log := logf.FromContext(ctx)
	if existed {
		log.Info("Updating "+kind, kind, klog.KObj(applied))
	} else {
		log.Info("Creating "+kind, kind, klog.KObj(applied))
	}
	if err := r.Apply(ctx, desired, fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("failed to apply %s: %w", kind, err)
	}
	// Apply decoded the answer into desired.
	if err := convertApplied(desired, applied); err != nil {
		return fmt.Errorf("failed to read the applied %s: %w", kind, err)
	}
	return nil
}

// kindOf returns the kind of obj, for logs, events and errors.
func (r *MemcachedReconciler) kindOf(obj client.Object) string {
	if gvk, err := apiutil.GVKForObject(obj, r.Scheme()); err == nil {
		return gvk.Kind
	}
	return obj.GetObjectKind().GroupVersionKind().Kind
}

// convertApplied copies an apply configuration into the object of the same
// type: both have the same JSON form.
func convertApplied(from runtime.ApplyConfiguration, to client.Object) error {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(from)
	if err != nil {
		return err
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u, to)
}

// change is what applying changed, told to users as an event on the Memcached.
type change struct {
	reason, action, note string
}

// deploymentChanges describes, as events, what applying desired over current
// changes. They are computed before applying, as Apply overwrites desired
// with the API server's answer, and recorded only once the apply succeeded.
func deploymentChanges(mc *cachev1alpha1.Memcached, existed bool, current *appsv1.Deployment,
	desired *appsv1ac.DeploymentApplyConfiguration) []change {
	if !existed {
		return nil // told by the Created event
	}
	var changes []change
	scaled := current.Spec.Replicas == nil || *current.Spec.Replicas != mc.Spec.Size
	if scaled {
		changes = append(changes, change{"Scaled", "Scale", fmt.Sprintf("Scaled Deployment %s from %d to %d replicas",
			mc.Name, ptr.Deref(current.Spec.Replicas, 1), mc.Spec.Size)})
	}
	templateUpToDate, err := resources.UpToDate(desired.Spec.Template, &current.Spec.Template)
	switch {
	case err == nil && !templateUpToDate:
		changes = append(changes, change{"ConfigChanged", "Update",
			fmt.Sprintf("Updated the pod template of Deployment %s: the memcached pods are replaced", mc.Name)})
	case !scaled:
		changes = append(changes, change{"DriftCorrected", "Update",
			fmt.Sprintf("Put back fields of Deployment %s that were changed outside the operator", mc.Name)})
	}
	return changes
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
	if w := w.(writtenStatus); w.before == mc.ResourceVersion {
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
	if err := r.Status().Apply(ctx, status.ApplyConfiguration(mc, newStatus), fieldOwner, client.ForceOwnership); err != nil {
		// A Memcached deleted since it was read has no status to write.
		return client.IgnoreNotFound(fmt.Errorf("failed to apply status: %w", err))
	}
	r.written.Store(client.ObjectKeyFromObject(mc), writtenStatus{before: mc.ResourceVersion, status: newStatus})
	return nil
}
