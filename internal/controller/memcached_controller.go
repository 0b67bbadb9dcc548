// Package controller holds the Memcached reconciler: it applies the objects
// that internal/resources builds and writes the status that internal/status
// computes.
package controller

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	cacheac "example.com/memcached-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// fieldOwner is the field manager of everything the operator applies.
const fieldOwner = client.FieldOwner(resources.ManagerName)

// MemcachedReconciler reconciles a Memcached: it keeps the Deployment of
// memcached pods as resources.Deployment describes it and reports the pods in
// the Memcached's status.
type MemcachedReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds,verbs=get;list;watch
// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds/status,verbs=patch
// +kubebuilder:rbac:groups=cache.example.com,resources=memcacheds/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=core,resources=pods,verbs=list;watch

// Reconcile brings the objects a Memcached owns to the state its spec asks
// for, then reports what it observes in its status.
func (r *MemcachedReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &cachev1alpha1.Memcached{}
	if err := r.Get(ctx, req.NamespacedName, mc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !mc.DeletionTimestamp.IsZero() {
		// The garbage collector deletes what the Memcached owns.
		return ctrl.Result{}, nil
	}

	if err := r.reconcileDeployment(ctx, mc); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.reconcileStatus(ctx, mc)
}

// reconcileDeployment applies the desired Deployment unless the one in the
// cache already has every field the operator sets.
func (r *MemcachedReconciler) reconcileDeployment(ctx context.Context, mc *cachev1alpha1.Memcached) error {
	log := logf.FromContext(ctx)
	desired := resources.Deployment(mc)

	current := &appsv1.Deployment{}
	err := r.Get(ctx, client.ObjectKeyFromObject(mc), current)
	switch {
	case apierrors.IsNotFound(err):
		log.Info("Creating Deployment", "deployment", klog.KObj(mc), "replicas", mc.Spec.Size)
	case err != nil:
		return fmt.Errorf("failed to get Deployment: %w", err)
	default:
		upToDate, err := resources.UpToDate(desired, current)
		if err != nil {
			return fmt.Errorf("failed to compare Deployment: %w", err)
		}
		if upToDate {
			return nil
		}
		log.Info("Updating Deployment", "deployment", klog.KObj(current), "replicas", mc.Spec.Size)
	}

	if err := r.Apply(ctx, desired, fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("failed to apply Deployment: %w", err)
	}
	return nil
}

// reconcileStatus computes the status from the Memcached's pods and writes it
// when it differs from the one the Memcached has.
func (r *MemcachedReconciler) reconcileStatus(ctx context.Context, mc *cachev1alpha1.Memcached) error {
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(mc.Namespace), client.MatchingLabels(resources.SelectorLabels(mc))); err != nil {
		return fmt.Errorf("failed to list pods: %w", err)
	}

	newStatus := status.Compute(mc, pods.Items)
	if equality.Semantic.DeepEqual(mc.Status, newStatus) {
		return nil
	}

	patch := cacheac.Memcached(mc.Name, mc.Namespace).
		WithStatus(cacheac.MemcachedStatus().
			WithObservedGeneration(newStatus.ObservedGeneration).
			WithNodes(newStatus.Nodes...))
	if err := r.Status().Apply(ctx, patch, fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("failed to apply status: %w", err)
	}
	return nil
}
