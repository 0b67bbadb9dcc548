package status

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// conditionReason is the format the API server requires of a condition's
// reason.
var conditionReason = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`)

// The bits of a fuzzed pod.
const (
	podReady = 1 << iota
	podDeleting
	podHasIP
	podOldTemplate
	podOfDeployment
	podCrashLooping
	podUnschedulable
	podForeignName
)

// The bits of a fuzzed world.
const (
	worldStatefulSet = 1 << iota
	worldHasDeployment
	worldHasStatefulSet
	worldSpecError
	worldApplyError
	worldConflict
	worldMonitoring
	worldDeploymentFailing
	worldDraining
	worldPublishedDeploymentList
	worldReadError
	worldServiceMonitorAPIMissing
)

// fuzzWorld is what a reconcile observes and does, made from the fuzzer's
// inputs.
func fuzzWorld(size int32, published uint8, world uint16, pods []byte, drainSeconds int32) (*cachev1alpha1.Memcached, Observed, Outcome) {
	has := func(bit uint16) bool { return world&bit != 0 }
	mc := newMemcached(max(size, 0)%16, 3)
	mc.Spec.ScaleDownDrainSeconds = ptr.To(max(drainSeconds, 0) % 600)
	if has(worldStatefulSet) {
		mc.Spec.Workload = cachev1alpha1.WorkloadStatefulSet
	}
	for i := range int(published % 20) {
		mc.Status.ServerList = append(mc.Status.ServerList, StableName(mc, i))
	}
	if has(worldPublishedDeploymentList) {
		mc.Status.ServerList = append(mc.Status.ServerList, "10.0.0.99:11211")
	}
	if has(worldDraining) {
		mc.Status.DrainingSince = &earlier
	}

	var observed Observed
	if has(worldHasDeployment) {
		observed.Deployment = rolledOut(int32(len(pods)))
		if has(worldDeploymentFailing) {
			observed.Deployment.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing,
				Status: corev1.ConditionFalse, Reason: ReasonProgressDeadlineExceeded, Message: "deadline exceeded"}}
		}
	}
	if has(worldHasStatefulSet) {
		observed.StatefulSet = statefulSet(int32(len(pods)), int32(len(pods))/2)
		observed.StatefulSet.Annotations = map[string]string{resources.TemplateHashAnnotation: currentTemplate}
	}
	var outcome Outcome
	switch {
	case has(worldSpecError):
		outcome.SpecError = &SpecError{Reason: ReasonSecretNotFound, Message: "Secret users is not found"}
	case has(worldReadError):
		outcome.ReadError = errors.New("Secret users named by spec.auth.secretName cannot be read: forbidden")
	case has(worldConflict):
		outcome.ApplyError = &ConflictError{Object: "Service cache"}
	case has(worldApplyError):
		outcome.ApplyError = errors.New("the API server is unavailable")
	}
	if has(worldMonitoring) {
		mc.Spec.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
		outcome.ServiceMonitorAPIMissing = has(worldServiceMonitorAPIMissing)
	}

	for i, bits := range pods[:min(len(pods), 24)] {
		name := fmt.Sprintf("cache-%d", i)
		if bits&podForeignName != 0 {
			name = fmt.Sprintf("cache-7f9c%d", i)
		}
		state := running
		if bits&podReady != 0 {
			state = ready
		}
		p := pod(name, "", state)
		if bits&podHasIP != 0 {
			p.Status.PodIP = fmt.Sprintf("10.1.0.%d", i)
		}
		if bits&podDeleting != 0 {
			p.DeletionTimestamp = &earlier
		}
		if bits&podOldTemplate != 0 {
			p = oldTemplate(p)
		}
		if bits&podOfDeployment == 0 {
			p.OwnerReferences[0].Kind = "StatefulSet"
		}
		if bits&podCrashLooping != 0 {
			p = waiting(p, "CrashLoopBackOff", "back-off restarting failed container")
		}
		if bits&podUnschedulable != 0 {
			p = withCondition(p, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available"})
		}
		observed.Pods = append(observed.Pods, p)
	}
	return mc, observed, outcome
}

func FuzzCompute(f *testing.F) {
	f.Add(int32(3), uint8(0), uint16(worldHasDeployment), []byte{podReady | podHasIP | podOfDeployment, podOfDeployment, 0}, int32(30))
	f.Add(int32(3), uint8(5), uint16(worldStatefulSet|worldHasStatefulSet), []byte{podReady, podReady, podReady, podReady, 0}, int32(30))
	f.Add(int32(5), uint8(3), uint16(worldStatefulSet|worldHasStatefulSet|worldDraining), []byte{podReady, podReady | podDeleting, podCrashLooping}, int32(0))
	f.Add(int32(2), uint8(0), uint16(worldStatefulSet|worldHasDeployment|worldHasStatefulSet|worldPublishedDeploymentList), []byte{podReady | podOfDeployment | podHasIP}, int32(10))
	f.Add(int32(0), uint8(2), uint16(worldSpecError|worldMonitoring), []byte{podUnschedulable, podOldTemplate | podForeignName}, int32(5))
	f.Add(int32(4), uint8(1), uint16(worldConflict|worldHasDeployment|worldDeploymentFailing), []byte{podReady | podOfDeployment | podHasIP}, int32(5))
	f.Fuzz(func(t *testing.T, size int32, published uint8, world uint16, pods []byte, drainSeconds int32) {
		mc, observed, outcome := fuzzWorld(size, published, world, pods, drainSeconds)
		servers := PlanServers(mc, observed, now)
		status := Compute(mc, observed, outcome, servers, now)

		// The same world, with the pods listed in another order, as a
		// cache may list them: the same status.
		reversed := observed
		reversed.Pods = slices.Clone(observed.Pods)
		slices.Reverse(reversed.Pods)
		if s := PlanServers(mc, reversed, now); !equality.Semantic.DeepEqual(s, servers) {
			t.Fatalf("the server plan depends on the order of the pods:\n%+v\n%+v", servers, s)
		}
		if s := Compute(mc, reversed, outcome, servers, now); !equality.Semantic.DeepEqual(s, status) {
			t.Fatalf("the status depends on the order of the pods:\n%+v\n%+v", status, s)
		}

		// Once written, the status computed again from the same world is the
		// same: a reconcile that finds nothing changed writes nothing.
		written := mc.DeepCopy()
		written.Status = status
		if again := Compute(written, observed, outcome, PlanServers(written, observed, now), now); !equality.Semantic.DeepEqual(again, status) {
			t.Fatalf("the status changes when computed again:\n%+v\n%+v", status, again)
		}

		checkStatus(t, mc, outcome, status)
	})
}

// checkStatus checks what every status the operator writes guarantees.
func checkStatus(t *testing.T, mc *cachev1alpha1.Memcached, outcome Outcome, status cachev1alpha1.MemcachedStatus) {
	t.Helper()
	if _, err := labels.Parse(status.Selector); err != nil {
		t.Errorf("status.selector %q does not parse: %v", status.Selector, err)
	}
	if int(status.Replicas) != len(status.Nodes) || status.ReadyReplicas > status.Replicas {
		t.Errorf("%d replicas, %d ready, nodes %q", status.Replicas, status.ReadyReplicas, status.Nodes)
	}
	if !slices.IsSorted(status.Nodes) || len(slices.Compact(slices.Clone(status.Nodes))) != len(status.Nodes) {
		t.Errorf("status.nodes %q are not sorted and unique", status.Nodes)
	}
	seen := map[string]bool{}
	for _, server := range status.ServerList {
		_, port, err := net.SplitHostPort(server)
		if err != nil || port != "11211" || seen[server] {
			t.Errorf("status.serverList %q holds %q", status.ServerList, server)
		}
		seen[server] = true
	}
	failed := outcome.failed() != nil
	if (status.ObservedGeneration == mc.Generation) == failed {
		t.Errorf("status.observedGeneration is %d of generation %d, with errors: %v", status.ObservedGeneration, mc.Generation, failed)
	}

	checkConditions(t, mc, outcome, status)
}

// checkConditions checks the conditions the operator writes.
func checkConditions(t *testing.T, mc *cachev1alpha1.Memcached, outcome Outcome, status cachev1alpha1.MemcachedStatus) {
	t.Helper()
	failed := outcome.failed() != nil
	ours := 0
	for _, c := range status.Conditions {
		if !slices.Contains(Conditions, c.Type) {
			continue
		}
		ours++
		if c.Status != metav1.ConditionTrue && c.Status != metav1.ConditionFalse {
			t.Errorf("condition %s has status %q", c.Type, c.Status)
		}
		if !conditionReason.MatchString(c.Reason) || c.Message == "" || len(c.Message) > 32768 {
			t.Errorf("condition %s has reason %q and message %q", c.Type, c.Reason, c.Message)
		}
		if c.ObservedGeneration != mc.Generation || c.LastTransitionTime.IsZero() {
			t.Errorf("condition %s: observedGeneration %d, lastTransitionTime %v", c.Type, c.ObservedGeneration, c.LastTransitionTime)
		}
	}
	want := 3
	if mc.Spec.MonitoringEnabled() && !failed {
		want = 4
	}
	if ours != want {
		t.Errorf("%d conditions of the operator, want %d: %+v", ours, want, status.Conditions)
	}
	available := meta.IsStatusConditionTrue(status.Conditions, cachev1alpha1.ConditionAvailable)
	if available != (mc.Spec.Size > 0 && status.ReadyReplicas >= mc.Spec.Size) {
		t.Errorf("Available is %v with %d/%d ready", available, status.ReadyReplicas, mc.Spec.Size)
	}
	if failed && !meta.IsStatusConditionTrue(status.Conditions, cachev1alpha1.ConditionDegraded) {
		t.Errorf("Degraded is not True despite an error")
	}
	if meta.IsStatusConditionFalse(status.Conditions, cachev1alpha1.ConditionProgressing) &&
		(status.Replicas != mc.Spec.Size || status.ReadyReplicas != mc.Spec.Size) {
		t.Errorf("Progressing is False with %d replicas, %d ready, of %d", status.Replicas, status.ReadyReplicas, mc.Spec.Size)
	}
	checkPublishedPlan(t, mc, failed, status)
}

// checkPublishedPlan checks the server list and drain the status publishes:
// those last applied when the reconcile failed, else a drain under way.
func checkPublishedPlan(t *testing.T, mc *cachev1alpha1.Memcached, failed bool, status cachev1alpha1.MemcachedStatus) {
	t.Helper()
	if failed {
		// Nothing planned was applied: the list and the drain stay as they were.
		if !slices.Equal(status.ServerList, mc.Status.ServerList) || status.DrainingSince != mc.Status.DrainingSince {
			t.Errorf("with an error, the status publishes %q draining since %v, want those last applied", status.ServerList, status.DrainingSince)
		}
		return // the drain checks below are those of a status planned now
	}
	if status.DrainingSince != nil && mc.Spec.Workload != cachev1alpha1.WorkloadStatefulSet {
		t.Errorf("a Deployment's status tells of a drain")
	}
	if status.DrainingSince != nil && time.Duration(*mc.Spec.ScaleDownDrainSeconds)*time.Second <= now.Sub(status.DrainingSince.Time) {
		t.Errorf("a drain that began at %v is still under way at %v, after %ds", status.DrainingSince, now, *mc.Spec.ScaleDownDrainSeconds)
	}
}
