// Package status computes the status of a Memcached from the objects the
// operator observes. Its functions are pure: they read no cluster state.
package status

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	cacheac "example.com/memcached-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
)

// Reasons of the conditions.
const (
	ReasonAllReplicasReady = "AllReplicasReady"
	ReasonReplicasNotReady = "ReplicasNotReady"
	ReasonScaledToZero     = "ScaledToZero"

	ReasonCreating    = "Creating"
	ReasonScalingUp   = "ScalingUp"
	ReasonScalingDown = "ScalingDown"
	ReasonRollingOut  = "RollingOut"
	ReasonUpToDate    = "UpToDate"

	ReasonInvalidSpec              = "InvalidSpec"
	ReasonApplyFailed              = "ApplyFailed"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	ReasonAsExpected               = "AsExpected"
	// Reasons of a SpecError about a Secret the spec refers to.
	ReasonSecretNotFound = "SecretNotFound"
	ReasonInvalidSecret  = "InvalidSecret"
)

// SpecError is why a spec cannot be applied, with the reason the Degraded
// condition gives. Other errors in Observed.SpecError give ReasonInvalidSpec.
type SpecError struct {
	Reason  string
	Message string
}

func (e *SpecError) Error() string { return e.Message }

// SpecErrorReason returns the reason of a SpecError in err, ReasonInvalidSpec
// when there is none.
func SpecErrorReason(err error) string {
	if specErr := (*SpecError)(nil); errors.As(err, &specErr) {
		return specErr.Reason
	}
	return ReasonInvalidSpec
}

// Observed is what the operator observed of a Memcached's objects in one
// reconcile.
type Observed struct {
	// Deployment is the Memcached's Deployment, nil if it does not exist yet.
	Deployment *appsv1.Deployment
	// Pods are the pods that carry the Memcached's selector labels.
	Pods []corev1.Pod
	// SpecError is why the spec cannot be applied, nil if it can. The
	// operator then leaves the objects as they are.
	SpecError error
	// ApplyError is why applying the desired objects failed, nil if it did not.
	ApplyError error
	// Monitoring is the MonitoringReady condition when spec.monitoring is
	// enabled, nil when it is not: the condition is then removed.
	Monitoring *metav1.Condition
}

// Compute returns the status of mc given what was observed. now stamps the
// conditions whose status changes; the others keep their transition time.
func Compute(mc *cachev1alpha1.Memcached, observed Observed, now metav1.Time) cachev1alpha1.MemcachedStatus {
	status := cachev1alpha1.MemcachedStatus{
		ObservedGeneration: mc.Status.ObservedGeneration,
		Selector:           labels.SelectorFromSet(resources.SelectorLabels(mc)).String(),
		Conditions:         slices.Clone(mc.Status.Conditions),
	}
	if observed.SpecError == nil && observed.ApplyError == nil {
		status.ObservedGeneration = mc.Generation
	}

	active := activePods(observed.Pods)
	status.Replicas = int32(len(active))
	for i := range active {
		status.Nodes = append(status.Nodes, active[i].Name)
		if isReady(&active[i]) {
			status.ReadyReplicas++
			if ip := active[i].Status.PodIP; ip != "" {
				status.ServerList = append(status.ServerList, net.JoinHostPort(ip, strconv.Itoa(memcached.Port)))
			}
		}
	}

	for _, c := range []metav1.Condition{
		available(mc, status.ReadyReplicas),
		progressing(mc, observed.Deployment, status.Replicas, status.ReadyReplicas),
		degraded(observed),
	} {
		c.ObservedGeneration = mc.Generation
		c.LastTransitionTime = now
		meta.SetStatusCondition(&status.Conditions, c)
	}
	if c := observed.Monitoring; c != nil {
		c := *c
		c.Type, c.ObservedGeneration, c.LastTransitionTime = cachev1alpha1.ConditionMonitoringReady, mc.Generation, now
		meta.SetStatusCondition(&status.Conditions, c)
	} else {
		meta.RemoveStatusCondition(&status.Conditions, cachev1alpha1.ConditionMonitoringReady)
	}
	return status
}

// activePods returns the pods that are not being deleted, sorted by name.
func activePods(pods []corev1.Pod) []corev1.Pod {
	var active []corev1.Pod
	for i := range pods {
		if pods[i].DeletionTimestamp == nil {
			active = append(active, pods[i])
		}
	}
	slices.SortFunc(active, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return active
}

func available(mc *cachev1alpha1.Memcached, ready int32) metav1.Condition {
	size := mc.Spec.Size
	switch {
	case size == 0:
		return metav1.Condition{Type: cachev1alpha1.ConditionAvailable, Status: metav1.ConditionFalse,
			Reason: ReasonScaledToZero, Message: "spec.size is 0: no memcached pod runs"}
	case ready >= size:
		return metav1.Condition{Type: cachev1alpha1.ConditionAvailable, Status: metav1.ConditionTrue,
			Reason: ReasonAllReplicasReady, Message: fmt.Sprintf("%d/%d memcached pods are ready", ready, size)}
	default:
		return metav1.Condition{Type: cachev1alpha1.ConditionAvailable, Status: metav1.ConditionFalse,
			Reason: ReasonReplicasNotReady, Message: fmt.Sprintf("%d/%d memcached pods are ready", ready, size)}
	}
}

func progressing(mc *cachev1alpha1.Memcached, d *appsv1.Deployment, replicas, ready int32) metav1.Condition {
	size := mc.Spec.Size
	c := metav1.Condition{Type: cachev1alpha1.ConditionProgressing, Status: metav1.ConditionTrue}
	switch {
	case d == nil:
		c.Reason, c.Message = ReasonCreating, "Creating the Deployment"
	case replicas < size:
		c.Reason, c.Message = ReasonScalingUp, fmt.Sprintf("Scaling up from %d to %d memcached pods", replicas, size)
	case replicas > size:
		c.Reason, c.Message = ReasonScalingDown, fmt.Sprintf("Scaling down from %d to %d memcached pods", replicas, size)
	case d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas < size ||
		d.Status.Replicas > size || ready < size:
		c.Reason, c.Message = ReasonRollingOut, fmt.Sprintf("%d/%d memcached pods run the current spec and %d are ready",
			d.Status.UpdatedReplicas, size, ready)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonUpToDate,
			fmt.Sprintf("All %d memcached pods run the current spec and are ready", size)
	}
	return c
}

func degraded(observed Observed) metav1.Condition {
	c := metav1.Condition{Type: cachev1alpha1.ConditionDegraded, Status: metav1.ConditionTrue}
	switch {
	case observed.SpecError != nil:
		c.Reason, c.Message = SpecErrorReason(observed.SpecError), observed.SpecError.Error()
		return c
	case observed.ApplyError != nil:
		c.Reason, c.Message = ReasonApplyFailed, observed.ApplyError.Error()
		return c
	}
	if d := observed.Deployment; d != nil {
		for _, dc := range d.Status.Conditions {
			switch {
			case dc.Type == appsv1.DeploymentReplicaFailure && dc.Status == corev1.ConditionTrue:
				// The ReplicaSet cannot create pods: quota, Pod Security, ...
				c.Reason, c.Message = dc.Reason, dc.Message
				return c
			case dc.Type == appsv1.DeploymentProgressing && dc.Status == corev1.ConditionFalse &&
				dc.Reason == ReasonProgressDeadlineExceeded:
				c.Reason, c.Message = ReasonProgressDeadlineExceeded, dc.Message
				return c
			}
		}
	}
	c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonAsExpected, "The memcached pods can be created and run"
	return c
}

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ApplyConfiguration returns the server-side apply configuration that writes
// status as the status of mc.
func ApplyConfiguration(mc *cachev1alpha1.Memcached, status cachev1alpha1.MemcachedStatus) *cacheac.MemcachedApplyConfiguration {
	s := cacheac.MemcachedStatus().
		WithObservedGeneration(status.ObservedGeneration).
		WithReplicas(status.Replicas).
		WithReadyReplicas(status.ReadyReplicas).
		WithSelector(status.Selector).
		WithNodes(status.Nodes...).
		WithServerList(status.ServerList...)
	for _, c := range status.Conditions {
		s.WithConditions(metav1ac.Condition().
			WithType(c.Type).
			WithStatus(c.Status).
			WithObservedGeneration(c.ObservedGeneration).
			WithLastTransitionTime(c.LastTransitionTime).
			WithReason(c.Reason).
			WithMessage(c.Message))
	}
	return cacheac.Memcached(mc.Name, mc.Namespace).WithStatus(s)
}
