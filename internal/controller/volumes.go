package controller

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// +kubebuilder:rbac:groups=core,resources=persistentvolumeclaims,verbs=list;watch;patch

// extstoreClaimPrefix starts the name of every claim template of extstore
// volumes (memcached.ExtstoreClaimName).
const extstoreClaimPrefix = "extstore-"

// extstoreVolumes is what the StatefulSet of a Memcached with extstore is
// built with.
type extstoreVolumes struct {
	// claim is the name of its claim template: the name the claims that
	// exist were created with, which they keep as they grow.
	claim string
	// sizeMB is the size, in MiB, that its claim template asks for and
	// memcached's file is made for: spec.extstore.size once every claim
	// has grown to it, the size they had until then.
	sizeMB int64
}

// expandExtstoreVolumes grows the extstore volumes of the Memcached of s in
// place when spec.extstore.size grows, and records in s what its
// StatefulSet is to be built with.
//
// A claim template cannot change, and the claims of running pods are named
// after it, so the volumes keep the name they were created with. Each bound
// claim smaller than the size asked for is asked to grow; the API server
// refuses it unless the claim's StorageClass allows volume expansion, and
// the refusal makes the Memcached Degraded. Until every claim has the new
// capacity, with its filesystem grown, the StatefulSet keeps the old size:
// memcached's file must fit on its volume. Then the StatefulSet is
// recreated with the new size, leaving its pods and claims, and its pods
// are replaced one at a time with the larger file.
func (r *MemcachedReconciler) expandExtstoreVolumes(ctx context.Context, s *scope) error {
	mc := s.memcached
	if !mc.Spec.ExtstoreEnabled() || mc.Spec.GetWorkload() != cachev1alpha1.WorkloadStatefulSet || mc.Spec.WarmRestartEnabled() {
		return nil
	}
	askedMB := extstoreAskedMB(mc)
	claim, templateMB := extstoreClaimInUse(mc, s.observed)
	if claim == "" {
		// No volume yet: they are created of the size asked for.
		s.extstore = &extstoreVolumes{claim: memcached.ExtstoreClaimName(&mc.Spec), sizeMB: askedMB}
		return nil
	}
	s.extstore = &extstoreVolumes{claim: claim, sizeMB: askedMB}
	if templateMB >= askedMB {
		return nil
	}

	claims, err := r.extstoreClaims(ctx, mc, claim)
	if err != nil {
		return err
	}
	// smallestMB is the smallest capacity of the bound claims that have
	// not grown, 0 when none is bound.
	grown, smallestMB := 0, int64(0)
	for i := range claims {
		c := &claims[i]
		if hasGrown(c, askedMB) {
			grown++
			continue
		}
		if capacity := capacityMB(c); capacity > 0 && (smallestMB == 0 || capacity < smallestMB) {
			smallestMB = capacity
		}
		if err := r.expandClaim(ctx, mc, c, askedMB); err != nil {
			s.outcome.VolumeExpansionError = err
		}
	}
	if grown == len(claims) {
		return nil
	}
	if templateMB == 0 {
		// The StatefulSet is being recreated: the bound claims tell the
		// size; with none bound, the size the claims were named after,
		// which no claim is smaller than.
		templateMB = smallestMB
		if templateMB == 0 {
			templateMB = memcached.ExtstoreClaimSizeMB(claim)
		}
	}
	s.extstore.sizeMB = templateMB
	s.outcome.ExpandingVolumes = fmt.Sprintf("Expanding the extstore volumes from %dMi to %dMi: %d/%d have grown",
		templateMB, askedMB, grown, len(claims))
	return nil
}

// extstoreAskedMB returns the size of the extstore volumes mc asks for, in
// MiB.
func extstoreAskedMB(mc *cachev1alpha1.Memcached) int64 {
	size := memcached.ExtstoreVolumeSize(&mc.Spec)
	return size.Value() >> 20
}

// extstoreClaimInUse returns the name of the claim template of the extstore
// volumes of mc that exist, and the size in MiB its StatefulSet asks for:
// the StatefulSet's claim template, or, while the StatefulSet is being
// recreated, the volume its pods mount (size 0: unknown). It returns "" when
// neither has one.
func extstoreClaimInUse(mc *cachev1alpha1.Memcached, observed status.Observed) (string, int64) {
	if set := observed.StatefulSet; set != nil {
		for _, c := range set.Spec.VolumeClaimTemplates {
			if strings.HasPrefix(c.Name, extstoreClaimPrefix) {
				size := c.Spec.Resources.Requests[corev1.ResourceStorage]
				return c.Name, size.Value() >> 20
			}
		}
	}
	for i := range observed.Pods {
		pod := &observed.Pods[i]
		for _, v := range pod.Spec.Volumes {
			if strings.HasPrefix(v.Name, extstoreClaimPrefix) && v.PersistentVolumeClaim != nil &&
				v.PersistentVolumeClaim.ClaimName == v.Name+"-"+pod.Name && strings.HasPrefix(pod.Name, mc.Name+"-") {
				return v.Name, 0
			}
		}
	}
	return "", 0
}

// extstoreClaims returns the claims of the StatefulSet of mc made from the
// claim template claim: <claim>-<name>-<ordinal>, labelled as its own.
func (r *MemcachedReconciler) extstoreClaims(ctx context.Context, mc *cachev1alpha1.Memcached, claim string) ([]corev1.PersistentVolumeClaim, error) {
	list := &corev1.PersistentVolumeClaimList{}
	if err := r.List(ctx, list, client.InNamespace(mc.Namespace), client.MatchingLabels(resources.SelectorLabels(mc))); err != nil {
		return nil, fmt.Errorf("failed to list the claims of the extstore volumes: %w", err)
	}
	prefix := claim + "-" + mc.Name + "-"
	return slices.DeleteFunc(list.Items, func(c corev1.PersistentVolumeClaim) bool {
		ordinal, ok := strings.CutPrefix(c.Name, prefix)
		_, err := strconv.ParseUint(ordinal, 10, 31)
		return !ok || err != nil || c.DeletionTimestamp != nil
	}), nil
}

// hasGrown reports whether claim has a volume of at least sizeMB whose
// filesystem has grown too.
func hasGrown(claim *corev1.PersistentVolumeClaim, sizeMB int64) bool {
	if capacityMB(claim) < sizeMB {
		return false
	}
	return !slices.ContainsFunc(claim.Status.Conditions, func(c corev1.PersistentVolumeClaimCondition) bool {
		return (c.Type == corev1.PersistentVolumeClaimResizing || c.Type == corev1.PersistentVolumeClaimFileSystemResizePending) &&
			c.Status == corev1.ConditionTrue
	})
}

// capacityMB returns the capacity of the volume of claim in MiB, 0 before it
// is bound.
func capacityMB(claim *corev1.PersistentVolumeClaim) int64 {
	capacity := claim.Status.Capacity[corev1.ResourceStorage]
	return capacity.Value() >> 20
}

// expandClaim asks claim for sizeMB, unless it already does. A claim that
// is not bound yet cannot change: it is asked once its volume is bound,
// which brings a reconcile.
func (r *MemcachedReconciler) expandClaim(ctx context.Context, mc *cachev1alpha1.Memcached, claim *corev1.PersistentVolumeClaim, sizeMB int64) error {
	requested := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if claim.Status.Phase != corev1.ClaimBound || requested.Value()>>20 >= sizeMB {
		return nil
	}
	size := *resource.NewQuantity(sizeMB<<20, resource.BinarySI)
	logf.FromContext(ctx).Info("Expanding volume", "claim", klog.KObj(claim), "from", requested.String(), "to", size.String())
	expand := corev1ac.PersistentVolumeClaim(claim.Name, claim.Namespace).
		WithSpec(corev1ac.PersistentVolumeClaimSpec().
			WithResources(corev1ac.VolumeResourceRequirements().
				WithRequests(corev1.ResourceList{corev1.ResourceStorage: size})))
	if err := r.Apply(ctx, expand, fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("failed to expand the extstore volume %s to %s: %w", claim.Name, size.String(), err)
	}
	r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "Expanding", "Expand",
		"Asked the volume %s to grow from %s to %s", claim.Name, requested.String(), size.String())
	return nil
}

// extstoreBuild returns what the objects of mc are built from: mc itself, or,
// while its extstore volumes grow, a copy of mc with the size they have.
func extstoreBuild(mc *cachev1alpha1.Memcached, volumes *extstoreVolumes) *cachev1alpha1.Memcached {
	if volumes == nil || extstoreAskedMB(mc) == volumes.sizeMB {
		return mc
	}
	build := mc.DeepCopy()
	build.Spec.Extstore.Size = strconv.FormatInt(volumes.sizeMB, 10) + "Mi"
	return build
}

// claimChanged passes the creations and deletions of claims, and the
// updates that can end an expansion: of the phase, capacity, conditions or
// request.
func claimChanged(oldObj, newObj client.Object) bool {
	oldClaim, okOld := oldObj.(*corev1.PersistentVolumeClaim)
	newClaim, okNew := newObj.(*corev1.PersistentVolumeClaim)
	if !okOld || !okNew {
		return true
	}
	return oldClaim.Status.Phase != newClaim.Status.Phase ||
		!oldClaim.Status.Capacity.Storage().Equal(*newClaim.Status.Capacity.Storage()) ||
		!slices.EqualFunc(oldClaim.Status.Conditions, newClaim.Status.Conditions, func(a, b corev1.PersistentVolumeClaimCondition) bool {
			return a.Type == b.Type && a.Status == b.Status
		}) ||
		!oldClaim.Spec.Resources.Requests.Storage().Equal(*newClaim.Spec.Resources.Requests.Storage())
}
