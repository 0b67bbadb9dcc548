package controller

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// deleteWorkloadOfDeleted deletes the workload of a Memcached that is gone.
// The garbage collector deletes what a Memcached owned one level at a time:
// its Deployment, then the Deployment's ReplicaSets, then their pods. Deleting
// the workload at once, as the Memcached goes, starts the deletion of its
// pods a level sooner; the Services, ConfigMap and budget, which own nothing,
// are left to the garbage collector. No finalizer is involved: a Memcached
// is never held back, and when the operator is down, the garbage collector
// does it all.
//
// The workload goes only if the API server confirms that the Memcached
// controlling it is gone and that the workload is still controlled by it (the
// cache may lag behind both): a workload orphaned as a deletion with
// propagationPolicy Orphan asks stays, since the garbage collector orphans it
// before the Memcached goes. Like the garbage collector, the delete carries
// only the workload's UID as a precondition, so a workload created anew
// stays; its resourceVersion changes with every status update while its pods
// go, and a delete conditioned on it would fail for no reason.
func (r *MemcachedReconciler) deleteWorkloadOfDeleted(ctx context.Context, key types.NamespacedName) error {
	for _, kind := range []resources.Kind{resources.DeploymentKind, resources.StatefulSetKind} {
		workload := r.newObject(kind)
		if err := r.Get(ctx, key, workload); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("failed to get %s: %w", kind.Kind, err)
		}
		owner := metav1.GetControllerOfNoCopy(workload)
		if !isMemcachedNamed(owner, key.Name) || !workload.GetDeletionTimestamp().IsZero() {
			continue
		}
		gone, err := r.memcachedGone(ctx, key, owner.UID)
		if err != nil || !gone {
			return err
		}
		// The cache may also lag behind the workload: read its owner
		// from the API server.
		live := metadataOnly(kind)
		if err := r.APIReader.Get(ctx, key, live); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("failed to get %s: %w", kind.Kind, err)
		}
		if liveOwner := metav1.GetControllerOfNoCopy(live); liveOwner == nil || liveOwner.UID != owner.UID ||
			!live.GetDeletionTimestamp().IsZero() {
			continue
		}
		logf.FromContext(ctx).Info("Deleting the workload of a deleted Memcached", "kind", kind.Kind, "object", klog.KObj(live))
		err = r.Delete(ctx, live, client.PropagationPolicy(metav1.DeletePropagationBackground),
			client.Preconditions{UID: ptr.To(live.GetUID())})
		if client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("failed to delete the %s of a deleted Memcached: %w", kind.Kind, err)
		}
	}
	return nil
}

// memcachedGone asks the API server whether the Memcached of UID uid is
// gone: no Memcached has its name, or another one does.
func (r *MemcachedReconciler) memcachedGone(ctx context.Context, key types.NamespacedName, uid types.UID) (bool, error) {
	live := &metav1.PartialObjectMetadata{}
	live.SetGroupVersionKind(cachev1alpha1.GroupVersion.WithKind("Memcached"))
	switch err := r.APIReader.Get(ctx, key, live); {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("failed to get Memcached: %w", err)
	}
	return live.UID != uid, nil
}
