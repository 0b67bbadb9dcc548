// Package status computes the status of a Memcached from the objects the
// operator observes. Its functions are pure: they read no cluster state.
package status

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

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

	ReasonCreating          = "Creating"
	ReasonScalingUp         = "ScalingUp"
	ReasonScalingDown       = "ScalingDown"
	ReasonRollingOut        = "RollingOut"
	ReasonSwitchingWorkload = "SwitchingWorkload"
	ReasonExpandingVolumes  = "ExpandingVolumes"
	ReasonUpToDate          = "UpToDate"

	ReasonServiceMonitorReady      = "ServiceMonitorReady"
	ReasonServiceMonitorAPIMissing = "ServiceMonitorAPIMissing"
	ReasonPrometheusRuleAPIMissing = "PrometheusRuleAPIMissing"

	ReasonInvalidSpec              = "InvalidSpec"
	ReasonApplyFailed              = "ApplyFailed"
	ReasonOwnershipConflict        = "OwnershipConflict"
	ReasonVolumeExpansionRefused   = "VolumeExpansionRefused"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	ReasonPodUnschedulable         = "PodUnschedulable"
	ReasonPodFailing               = "PodFailing"
	ReasonAsExpected               = "AsExpected"
	// Reasons of a SpecError about a Secret the spec refers to.
	ReasonSecretNotFound = "SecretNotFound"
	ReasonInvalidSecret  = "InvalidSecret"
	// ReasonSecretUnreadable says a Secret the spec refers to could not be
	// read, e.g. for RBAC or the network: it is retried.
	ReasonSecretUnreadable = "SecretUnreadable"
)

// Conditions are the condition types the operator writes.
var Conditions = []string{
	cachev1alpha1.ConditionAvailable,
	cachev1alpha1.ConditionProgressing,
	cachev1alpha1.ConditionDegraded,
	cachev1alpha1.ConditionMonitoringReady,
}

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

// ConflictError is an object the Memcached asks for that exists without the
// Memcached as its controller: the operator leaves it alone.
type ConflictError struct {
	// Object is the kind and name of the object.
	Object string
	// Owner describes who controls it, "" when nobody does.
	Owner string
}

func (e *ConflictError) Error() string {
	if e.Owner == "" {
		return fmt.Sprintf("%s exists and is not managed by this Memcached: it is left as it is; delete or rename it to let the operator create its own", e.Object)
	}
	return fmt.Sprintf("%s exists and is controlled by %s: it is left as it is; delete or rename it to let the operator create its own", e.Object, e.Owner)
}

// Observed is what the operator observed of a Memcached's objects in one
// reconcile.
type Observed struct {
	// Deployment is the Memcached's Deployment, nil if there is none.
	Deployment *appsv1.Deployment
	// StatefulSet is the Memcached's StatefulSet, nil if there is none.
	StatefulSet *appsv1.StatefulSet
	// Pods are the pods that carry the Memcached's selector labels.
	Pods []corev1.Pod
	// ProxyDeployment is the Deployment of the Memcached's proxies, nil if
	// there is none.
	ProxyDeployment *appsv1.Deployment
}

// Outcome is what one reconcile did with a Memcached, or why it could not.
type Outcome struct {
	// SpecError is why the spec cannot be applied, nil if it can. The
	// operator then leaves the objects as they are.
	SpecError error
	// ReadError is why an input the spec names, such as a Secret, could not
	// be read, nil if each was; nothing is applied, and the read is retried.
	ReadError error
	// ApplyError is why applying the desired objects failed, nil if it did not.
	ApplyError error
	// WaitingFor is what must happen before the objects can be created,
	// e.g. the deletion of an object of a deleted Memcached of the same
	// name; empty when nothing is awaited.
	WaitingFor string
	// ServiceMonitorAPIMissing is set when the Memcached asks for a
	// ServiceMonitor and the cluster has no ServiceMonitor API.
	ServiceMonitorAPIMissing bool
	// PrometheusRuleAPIMissing is set when the Memcached asks for alert
	// rules and the cluster has no PrometheusRule API.
	PrometheusRuleAPIMissing bool
	// ExpandingVolumes says how far the expansion of the extstore volumes
	// to a larger spec.extstore.size is, while some have not grown; empty
	// otherwise. memcached keeps the file of the size they have until then.
	ExpandingVolumes string
	// VolumeExpansionError is why an extstore volume could not be asked to
	// grow, such as a StorageClass that does not allow it; nil if each was.
	VolumeExpansionError error
	// ExporterInputError is why an input only the exporter reads, its
	// client certificate, could not be used, nil if it could. The exporter
	// is then left as it is, and everything else applied.
	ExporterInputError error
}

// failed returns why the reconcile could not apply the spec, nil when it
// could.
func (o Outcome) failed() error {
	switch {
	case o.SpecError != nil:
		return o.SpecError
	case o.ReadError != nil:
		return o.ReadError
	}
	return o.ApplyError
}

// workload returns the workload of spec.workload, and the one of the other
// kind, as observed; nil for one that does not exist.
func (o Observed) workload(mc *cachev1alpha1.Memcached) (current, previous metav1.Object) {
	var d, s metav1.Object
	if o.Deployment != nil {
		d = o.Deployment
	}
	if o.StatefulSet != nil {
		s = o.StatefulSet
	}
	if mc.Spec.GetWorkload() == cachev1alpha1.WorkloadStatefulSet {
		return s, d
	}
	return d, s
}

// Compute returns the status of mc given what was observed, what the
// reconcile did and the servers planned for it: the plan is reported only
// once applied. now stamps the conditions whose status changes; the others
// keep their transition time.
func Compute(mc *cachev1alpha1.Memcached, observed Observed, outcome Outcome, servers resources.Servers, now metav1.Time) cachev1alpha1.MemcachedStatus {
	status := cachev1alpha1.MemcachedStatus{
		ObservedGeneration: mc.Status.ObservedGeneration,
		Selector:           labels.SelectorFromSet(resources.SelectorLabels(mc)).String(),
		ServerList:         servers.List,
		DrainingSince:      servers.DrainingSince,
		Conditions:         slices.Clone(mc.Status.Conditions),
	}
	if outcome.failed() == nil {
		status.ObservedGeneration = mc.Generation
	} else {
		// What was planned was not applied, or not all of it: the list the
		// servers ConfigMap publishes, and the drain it began, stay those
		// last applied.
		status.ServerList, status.DrainingSince = mc.Status.ServerList, mc.Status.DrainingSince
	}

	active := activePods(observed.Pods)
	status.Replicas = int32(len(active))
	for i := range active {
		status.Nodes = append(status.Nodes, active[i].Name)
		if IsReady(&active[i]) {
			status.ReadyReplicas++
		}
	}

	status.Proxy = proxy(mc, observed.ProxyDeployment)

	conditions := []metav1.Condition{
		available(mc, status.ReadyReplicas),
		progressing(mc, observed, outcome, servers, active, status.ReadyReplicas),
		degraded(observed, outcome, active),
	}
	if c := monitoringReady(mc, outcome); c != nil {
		conditions = append(conditions, *c)
	} else {
		meta.RemoveStatusCondition(&status.Conditions, cachev1alpha1.ConditionMonitoringReady)
	}
	for _, c := range conditions {
		c.ObservedGeneration = mc.Generation
		c.LastTransitionTime = now
		meta.SetStatusCondition(&status.Conditions, c)
	}
	return status
}

// proxy returns the status of the proxies of mc, nil without spec.proxy.
func proxy(mc *cachev1alpha1.Memcached, deployment *appsv1.Deployment) *cachev1alpha1.ProxyStatus {
	if !mc.Spec.ProxyEnabled() {
		return nil
	}
	p := &cachev1alpha1.ProxyStatus{Address: ServiceAddress(mc)}
	if deployment != nil {
		p.Replicas, p.ReadyReplicas = deployment.Status.Replicas, deployment.Status.ReadyReplicas
	}
	return p
}

// ServiceAddress returns the DNS name and port of the Service of mc.
func ServiceAddress(mc *cachev1alpha1.Memcached) string {
	return net.JoinHostPort(fmt.Sprintf("%s.%s.svc", mc.Name, mc.Namespace), strconv.Itoa(memcached.Port))
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

// progressing tells what is changing. A pod runs the current template when
// it carries the template digest of its workload: while some pods do not,
// pods are being replaced, whatever the counts say during a surge.
func progressing(mc *cachev1alpha1.Memcached, observed Observed, outcome Outcome, servers resources.Servers, active []corev1.Pod, ready int32) metav1.Condition {
	size := mc.Spec.Size
	replicas := int32(len(active))
	c := metav1.Condition{Type: cachev1alpha1.ConditionProgressing, Status: metav1.ConditionTrue}
	current, previous := observed.workload(mc)
	updated := int32(0)
	if current != nil {
		hash := current.GetAnnotations()[resources.TemplateHashAnnotation]
		for i := range active {
			if runsTemplate(&active[i], hash) {
				updated++
			}
		}
	}
	switch {
	case current == nil && outcome.WaitingFor != "":
		c.Reason, c.Message = ReasonCreating, fmt.Sprintf("Creating the %s once %s", mc.Spec.GetWorkload(), outcome.WaitingFor)
	case current == nil:
		c.Reason, c.Message = ReasonCreating, fmt.Sprintf("Creating the %s", mc.Spec.GetWorkload())
	case outcome.WaitingFor != "":
		c.Reason, c.Message = ReasonCreating, fmt.Sprintf("Creating the objects besides the %s once %s", mc.Spec.GetWorkload(), outcome.WaitingFor)
	case outcome.ExpandingVolumes != "":
		c.Reason, c.Message = ReasonExpandingVolumes, outcome.ExpandingVolumes
	case previous != nil:
		c.Reason, c.Message = ReasonSwitchingWorkload, fmt.Sprintf(
			"Switching to a %s: the pods of the previous workload serve until its %d pods are ready", mc.Spec.GetWorkload(), size)
	case servers.DrainingSince != nil:
		c.Reason, c.Message = ReasonScalingDown, fmt.Sprintf(
			"Scaling down to %d memcached pods: the pods removed from the server list stop once they have drained", size)
	case updated < replicas:
		c.Reason, c.Message = ReasonRollingOut, fmt.Sprintf("%d/%d memcached pods run the current spec and %d are ready",
			updated, size, ready)
	case replicas < size:
		c.Reason, c.Message = ReasonScalingUp, fmt.Sprintf("Scaling up from %d to %d memcached pods", replicas, size)
	case replicas > size:
		c.Reason, c.Message = ReasonScalingDown, fmt.Sprintf("Scaling down from %d to %d memcached pods", replicas, size)
	case ready < size:
		c.Reason, c.Message = ReasonRollingOut, fmt.Sprintf("%d/%d memcached pods run the current spec and %d are ready",
			updated, size, ready)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonUpToDate,
			fmt.Sprintf("All %d memcached pods run the current spec and are ready", size)
	}
	return c
}

func degraded(observed Observed, outcome Outcome, active []corev1.Pod) metav1.Condition {
	c := metav1.Condition{Type: cachev1alpha1.ConditionDegraded, Status: metav1.ConditionTrue}
	var conflict *ConflictError
	switch {
	case outcome.SpecError != nil:
		c.Reason, c.Message = SpecErrorReason(outcome.SpecError), outcome.SpecError.Error()
		return c
	case outcome.ReadError != nil:
		c.Reason, c.Message = ReasonSecretUnreadable, outcome.ReadError.Error()
		return c
	case errors.As(outcome.ApplyError, &conflict):
		c.Reason, c.Message = ReasonOwnershipConflict, conflict.Error()
		return c
	case outcome.ApplyError != nil:
		c.Reason, c.Message = ReasonApplyFailed, outcome.ApplyError.Error()
		return c
	case outcome.VolumeExpansionError != nil:
		c.Reason, c.Message = ReasonVolumeExpansionRefused, outcome.VolumeExpansionError.Error()
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
	for i := range active {
		if reason, message := PodProblem(&active[i]); reason != "" {
			c.Reason, c.Message = reason, message
			return c
		}
	}
	c.Status, c.Reason, c.Message = metav1.ConditionFalse, ReasonAsExpected, "The memcached pods can be created and run"
	return c
}

// monitoringReady returns the MonitoringReady condition of mc, nil when
// monitoring is not enabled. A cluster without the ServiceMonitor or the
// PrometheusRule API is not an error: the condition says so, and the exporter runs all the same. When
// the reconcile could not apply the spec, the condition stays as it was.
func monitoringReady(mc *cachev1alpha1.Memcached, outcome Outcome) *metav1.Condition {
	if !mc.Spec.MonitoringEnabled() {
		return nil
	}
	if outcome.failed() != nil {
		return meta.FindStatusCondition(mc.Status.Conditions, cachev1alpha1.ConditionMonitoringReady)
	}
	const noRules = "no PrometheusRule API, so no PrometheusRule was created and the alert rules are not loaded"
	if err := outcome.ExporterInputError; err != nil {
		reason := ReasonSecretUnreadable
		if specErr := (*SpecError)(nil); errors.As(err, &specErr) {
			reason = specErr.Reason
		}
		return &metav1.Condition{Type: cachev1alpha1.ConditionMonitoringReady, Status: metav1.ConditionFalse,
			Reason: reason, Message: fmt.Sprintf("%s; the exporter %s is left as it was", err.Error(), resources.ExporterName(mc))}
	}
	if outcome.ServiceMonitorAPIMissing {
		missing := "no monitoring.coreos.com/v1 ServiceMonitor API, so no ServiceMonitor was created"
		if outcome.PrometheusRuleAPIMissing {
			missing += ", and " + noRules
		}
		return &metav1.Condition{Type: cachev1alpha1.ConditionMonitoringReady, Status: metav1.ConditionFalse,
			Reason: ReasonServiceMonitorAPIMissing,
			Message: fmt.Sprintf("The cluster has %s; "+
				"the exporter serves every memcached pod's metrics at %s:%d%s?target=<pod address>:11211 all the same. "+
				"Install prometheus-operator's CRDs, then restart the operator",
				missing, resources.ExporterName(mc), resources.MetricsPort, resources.ScrapePath)}
	}
	if outcome.PrometheusRuleAPIMissing {
		return &metav1.Condition{Type: cachev1alpha1.ConditionMonitoringReady, Status: metav1.ConditionFalse,
			Reason: ReasonPrometheusRuleAPIMissing,
			Message: fmt.Sprintf("The cluster has monitoring.coreos.com/v1 "+noRules+"; ServiceMonitor %s has Prometheus "+
				"scrape every memcached pod all the same. Install prometheus-operator's PrometheusRule CRD, then restart the operator, "+
				"or set spec.monitoring.alerts.enabled to false", mc.Name)}
	}
	message := fmt.Sprintf("ServiceMonitor %s has Prometheus scrape every memcached pod through the exporter %s",
		mc.Name, resources.ExporterName(mc))
	if mc.Spec.AlertsEnabled() {
		message += fmt.Sprintf("; PrometheusRule %s holds its alert rules", mc.Name)
	}
	return &metav1.Condition{Type: cachev1alpha1.ConditionMonitoringReady, Status: metav1.ConditionTrue,
		Reason: ReasonServiceMonitorReady, Message: message}
}

// ApplyConfiguration returns the server-side apply configuration that writes
// status as the status of mc. It holds only the conditions the operator
// writes: those of other writers stay theirs.
func ApplyConfiguration(mc *cachev1alpha1.Memcached, status cachev1alpha1.MemcachedStatus) *cacheac.MemcachedApplyConfiguration {
	s := cacheac.MemcachedStatus().
		WithObservedGeneration(status.ObservedGeneration).
		WithReplicas(status.Replicas).
		WithReadyReplicas(status.ReadyReplicas).
		WithSelector(status.Selector).
		WithNodes(status.Nodes...).
		WithServerList(status.ServerList...)
	if status.DrainingSince != nil {
		s.WithDrainingSince(*status.DrainingSince)
	}
	if p := status.Proxy; p != nil {
		s.WithProxy(cacheac.ProxyStatus().WithAddress(p.Address).WithReplicas(p.Replicas).WithReadyReplicas(p.ReadyReplicas))
	}
	for _, c := range status.Conditions {
		if !slices.Contains(Conditions, c.Type) {
			continue
		}
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

// Undecodable returns current with a Degraded condition that says the spec
// of the Memcached, at generation, cannot be read: err says why. The other
// conditions, and observedGeneration, stay as they were: nothing was
// observed or applied.
func Undecodable(current cachev1alpha1.MemcachedStatus, generation int64, err error, now metav1.Time) cachev1alpha1.MemcachedStatus {
	s := *current.DeepCopy()
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type:               cachev1alpha1.ConditionDegraded,
		Status:             metav1.ConditionTrue,
		ObservedGeneration: generation,
		LastTransitionTime: now,
		Reason:             ReasonInvalidSpec,
		Message: fmt.Sprintf("The spec cannot be read, so nothing is applied and the running pods are left as they are: %v. "+
			"Change the field it names; the API server refuses such values since this version of the operator", err),
	})
	return s
}
