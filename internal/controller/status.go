package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"example.com/memcached-operator/internal/status"
)

// cacheLagLimit bounds how long a reconcile waits for the cache to hold the
// status it wrote.
const cacheLagLimit = 10 * time.Second

// writeStatus computes the status of the Memcached of s from what the
// reconcile observed and did, sets the operator's gauges of it
// (metrics.go), and applies it unless the Memcached already has it, or
// unless leaveToNext: a reconcile that the next one follows anyway leaves
// the write to it.
func (r *MemcachedReconciler) writeStatus(ctx context.Context, s *scope, leaveToNext bool) error {
	if s.namespaceGone {
		return nil
	}
	mc := s.memcached
	newStatus := status.Compute(mc, s.observed, s.outcome, s.servers, s.now)
	recordMetrics(mc, &newStatus)
	if leaveToNext || equality.Semantic.DeepEqual(mc.Status, newStatus) {
		return nil
	}
	logf.FromContext(ctx).V(1).Info("Updating status", "old", mc.Status, "new", newStatus)
	applied := status.ApplyConfiguration(mc, newStatus)
	if err := r.Status().Apply(ctx, applied, fieldOwner, client.ForceOwnership); err != nil {
		// A Memcached deleted since it was read has no status to write.
		return client.IgnoreNotFound(fmt.Errorf("failed to apply status: %w", err))
	}
	return r.waitForCache(ctx, client.ObjectKeyFromObject(mc), ptr.Deref(applied.ResourceVersion, ""))
}

// waitForCache waits until the cache holds the Memcached at key at
// resourceVersion or later, or holds it no more. A reconcile that ran on
// an older copy, such as the one a pod event queues meanwhile, would
// compute the status from a status older than the one written, and write
// again. As cluster-api does after its own writes, the wait is short and
// bounded: it takes as long as the watch takes to deliver the write.
func (r *MemcachedReconciler) waitForCache(ctx context.Context, key types.NamespacedName, resourceVersion string) error {
	cached := newMemcached()
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, cacheLagLimit, true, func(ctx context.Context) (bool, error) {
		if err := r.memcacheds.Get(ctx, key, cached); err != nil {
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		}
		cmp, err := resourceversion.CompareResourceVersion(cached.GetResourceVersion(), resourceVersion)
		// A version that cannot be compared cannot be waited for.
		return err != nil || cmp >= 0, nil
	})
	if err != nil {
		return fmt.Errorf("failed to find the status written in the cache: %w", err)
	}
	return nil
}
