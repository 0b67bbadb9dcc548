package status

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// compute is Compute with the server list PlanServers plans.
func compute(mc *cachev1alpha1.Memcached, observed Observed, outcome Outcome, at metav1.Time) cachev1alpha1.MemcachedStatus {
	return Compute(mc, observed, outcome, PlanServers(mc, observed, at), at)
}

// oldTemplate returns p running another template than the current one.
func oldTemplate(p corev1.Pod) corev1.Pod {
	p.Annotations = map[string]string{resources.TemplateHashAnnotation: "t0"}
	return p
}

// withCondition returns p with the given condition.
func withCondition(p corev1.Pod, c corev1.PodCondition) corev1.Pod {
	p.Status.Conditions = append(p.Status.Conditions, c)
	return p
}

// waiting returns p with its memcached container waiting for reason.
func waiting(p corev1.Pod, reason, message string) corev1.Pod {
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "memcached",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}}}
	return p
}

var (
	earlier = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now     = metav1.NewTime(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
)

func newMemcached(size int32, generation int64) *cachev1alpha1.Memcached {
	return &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: "ns", Generation: generation},
		Spec:       cachev1alpha1.MemcachedSpec{Size: size},
		Status:     cachev1alpha1.MemcachedStatus{ObservedGeneration: generation - 1},
	}
}

type podState int

const (
	running podState = iota
	ready
	deleting
)

// currentTemplate is the template digest of the workloads of these tests.
const currentTemplate = "t1"

// pod returns a pod of a Deployment running the current template.
func pod(name, ip string, state podState) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name,
		Annotations:     map[string]string{resources.TemplateHashAnnotation: currentTemplate},
		OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "cache-1", Controller: ptr.To(true)}},
	}, Status: corev1.PodStatus{PodIP: ip}}
	switch state {
	case ready:
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	case deleting:
		p.DeletionTimestamp = &earlier
	}
	return p
}

// rolledOut is a Deployment whose every replica runs the current template.
func rolledOut(replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: 2, Annotations: map[string]string{resources.TemplateHashAnnotation: currentTemplate}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: replicas, UpdatedReplicas: replicas,
			ReadyReplicas: replicas, AvailableReplicas: replicas},
	}
}

func TestComputeReportsWhatIsObserved(t *testing.T) {
	type want struct {
		replicas, ready                    int32
		nodes, serverList                  []string
		available, progressing, degraded   metav1.ConditionStatus
		availableReason, progressingReason string
		degradedReason, degradedMessage    string
		progressingMessage                 string
		observedGeneration                 int64
	}
	failedCreate := rolledOut(0)
	failedCreate.Status.Conditions = []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate",
		Message: `pods "cache-x" is forbidden: violates PodSecurity "restricted:latest"`,
	}}
	stuck := rolledOut(3)
	stuck.Status.UpdatedReplicas = 1
	stuck.Status.Conditions = []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
		Message: `ReplicaSet "cache-2" has timed out progressing.`,
	}}

	tests := []struct {
		name     string
		mc       *cachev1alpha1.Memcached
		observed Observed
		outcome  Outcome
		want     want
	}{
		{
			name:     "new: no Deployment yet",
			mc:       newMemcached(3, 1),
			observed: Observed{},
			want: want{available: "False", availableReason: ReasonReplicasNotReady, progressing: "True",
				progressingReason: ReasonCreating, degraded: "False", degradedReason: ReasonAsExpected, observedGeneration: 1},
		},
		{
			name:    "new, waiting for the objects of a deleted Memcached of the same name to go",
			mc:      newMemcached(3, 1),
			outcome: Outcome{WaitingFor: "the garbage collector has deleted Service ns/cache of a deleted Memcached of this name"},
			want: want{available: "False", availableReason: ReasonReplicasNotReady, progressing: "True",
				progressingReason: ReasonCreating, degraded: "False", degradedReason: ReasonAsExpected, observedGeneration: 1,
				progressingMessage: "Creating the Deployment once the garbage collector has deleted Service ns/cache of a deleted Memcached of this name"},
		},
		{
			name:     "its workload created, waiting for another object of a deleted Memcached of the same name to go",
			mc:       newMemcached(3, 1),
			observed: Observed{Deployment: rolledOut(3)},
			outcome:  Outcome{WaitingFor: "the garbage collector has deleted Service ns/cache of a deleted Memcached of this name"},
			want: want{available: "False", availableReason: ReasonReplicasNotReady, progressing: "True",
				progressingReason: ReasonCreating, degraded: "False", degradedReason: ReasonAsExpected, observedGeneration: 1,
				progressingMessage: "Creating the objects besides the Deployment once the garbage collector has deleted Service ns/cache of a deleted Memcached of this name"},
		},
		{
			name: "all ready: nodes and servers sorted by pod name",
			mc:   newMemcached(3, 2),
			observed: Observed{Deployment: rolledOut(3), Pods: []corev1.Pod{
				pod("cache-c", "10.0.0.3", ready), pod("cache-a", "10.0.0.1", ready), pod("cache-b", "fd00::2", ready)}},
			want: want{replicas: 3, ready: 3, nodes: []string{"cache-a", "cache-b", "cache-c"},
				serverList: []string{"10.0.0.1:11211", "[fd00::2]:11211", "10.0.0.3:11211"},
				available:  "True", availableReason: ReasonAllReplicasReady, progressing: "False",
				progressingReason: ReasonUpToDate, degraded: "False", degradedReason: ReasonAsExpected, observedGeneration: 2},
		},
		{
			name: "all ready, extstore volumes growing",
			mc:   newMemcached(3, 2),
			observed: Observed{Deployment: rolledOut(3), Pods: []corev1.Pod{
				pod("cache-c", "10.0.0.3", ready), pod("cache-a", "10.0.0.1", ready), pod("cache-b", "10.0.0.2", ready)}},
			outcome: Outcome{ExpandingVolumes: "Expanding the extstore volumes from 10240Mi to 20480Mi: 1/3 have grown"},
			want: want{replicas: 3, ready: 3, nodes: []string{"cache-a", "cache-b", "cache-c"},
				serverList: []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"},
				available:  "True", availableReason: ReasonAllReplicasReady, progressing: "True",
				progressingReason: ReasonExpandingVolumes, degraded: "False", degradedReason: ReasonAsExpected, observedGeneration: 2,
				progressingMessage: "Expanding the extstore volumes from 10240Mi to 20480Mi: 1/3 have grown"},
		},
		{
			name: "all ready, extstore volumes refused to grow",
			mc:   newMemcached(3, 2),
			observed: Observed{Deployment: rolledOut(3), Pods: []corev1.Pod{
				pod("cache-c", "10.0.0.3", ready), pod("cache-a", "10.0.0.1", ready), pod("cache-b", "10.0.0.2", ready)}},
			outcome: Outcome{ExpandingVolumes: "Expanding the extstore volumes from 10240Mi to 20480Mi: 0/3 have grown",
				VolumeExpansionError: errors.New("failed to expand the extstore volume extstore-10gi-cache-0 to 20Gi: forbidden")},
			want: want{replicas: 3, ready: 3, nodes: []string{"cache-a", "cache-b", "cache-c"},
				serverList: []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"},
				available:  "True", availableReason: ReasonAllReplicasReady, progressing: "True",
				progressingReason: ReasonExpandingVolumes, degraded: "True", degradedReason: ReasonVolumeExpansionRefused, observedGeneration: 2,
				degradedMessage: "failed to expand the extstore volume extstore-10gi-cache-0 to 20Gi: forbidden"},
		},
		{
			name: "scaling up: pods being deleted and pods not ready are not servers",
			mc:   newMemcached(3, 2),
			observed: Observed{Deployment: rolledOut(3), Pods: []corev1.Pod{
				pod("cache-a", "10.0.0.1", ready), pod("cache-b", "10.0.0.2", running), pod("cache-old", "10.0.0.9", deleting)}},
			want: want{replicas: 2, ready: 1, nodes: []string{"cache-a", "cache-b"}, serverList: []string{"10.0.0.1:11211"},
				available: "False", availableReason: ReasonReplicasNotReady, progressing: "True",
				progressingReason: ReasonScalingUp, degraded: "False", degradedReason: ReasonAsExpected, observedGeneration: 2},
		},
		{
			name: "scaling down",
			mc:   newMemcached(1, 2),
			observed: Observed{Deployment: rolledOut(1), Pods: []corev1.Pod{
				pod("cache-a", "10.0.0.1", ready), pod("cache-b", "10.0.0.2", ready)}},
			want: want{replicas: 2, ready: 2, nodes: []string{"cache-a", "cache-b"},
				serverList: []string{"10.0.0.1:11211", "10.0.0.2:11211"},
				available:  "True", availableReason: ReasonAllReplicasReady, progressing: "True",
				progressingReason: ReasonScalingDown, degraded: "False", degradedReason: ReasonAsExpected, observedGeneration: 2},
		},
		{
			name:     "pods refused by admission",
			mc:       newMemcached(2, 2),
			observed: Observed{Deployment: failedCreate},
			want: want{available: "False", availableReason: ReasonReplicasNotReady, progressing: "True",
				progressingReason: ReasonScalingUp, degraded: "True", degradedReason: "FailedCreate",
				degradedMessage: `pods "cache-x" is forbidden: violates PodSecurity "restricted:latest"`, observedGeneration: 2},
		},
		{
			name: "rollout stuck",
			mc:   newMemcached(3, 2),
			observed: Observed{Deployment: stuck, Pods: []corev1.Pod{pod("cache-a", "10.0.0.1", ready),
				oldTemplate(pod("cache-b", "10.0.0.2", ready)), oldTemplate(pod("cache-c", "10.0.0.3", ready))}},
			want: want{replicas: 3, ready: 3, nodes: []string{"cache-a", "cache-b", "cache-c"},
				serverList: []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"},
				available:  "True", availableReason: ReasonAllReplicasReady, progressing: "True",
				progressingReason: ReasonRollingOut, degraded: "True", degradedReason: ReasonProgressDeadlineExceeded,
				degradedMessage: `ReplicaSet "cache-2" has timed out progressing.`, observedGeneration: 2},
		},
		{
			name:    "apply failed: observedGeneration stays behind",
			mc:      newMemcached(1, 5),
			outcome: Outcome{ApplyError: errors.New("failed to apply Deployment: boom")},
			want: want{available: "False", availableReason: ReasonReplicasNotReady, progressing: "True",
				progressingReason: ReasonCreating, degraded: "True", degradedReason: ReasonApplyFailed,
				degradedMessage: "failed to apply Deployment: boom", observedGeneration: 4},
		},
		{
			name:     "invalid spec: pods left as they are, observedGeneration stays behind",
			mc:       newMemcached(1, 5),
			observed: Observed{Deployment: rolledOut(1), Pods: []corev1.Pod{pod("cache-a", "10.0.0.1", ready)}},
			outcome:  Outcome{SpecError: errors.New("resources.limits.memory 64Mi is too small")},
			want: want{replicas: 1, ready: 1, nodes: []string{"cache-a"}, serverList: nil, /* not applied: the last list applied stays */
				available: "True", availableReason: ReasonAllReplicasReady, progressing: "False",
				progressingReason: ReasonUpToDate, degraded: "True", degradedReason: ReasonInvalidSpec,
				degradedMessage: "resources.limits.memory 64Mi is too small", observedGeneration: 4},
		},
		{
			name:     "missing Secret: its own reason",
			mc:       newMemcached(1, 5),
			observed: Observed{Deployment: rolledOut(1), Pods: []corev1.Pod{pod("cache-a", "10.0.0.1", ready)}},
			outcome:  Outcome{SpecError: fmt.Errorf("reading spec.auth: %w", &SpecError{Reason: ReasonSecretNotFound, Message: "Secret users does not exist"})},
			want: want{replicas: 1, ready: 1, nodes: []string{"cache-a"}, serverList: nil, /* not applied: the last list applied stays */
				available: "True", availableReason: ReasonAllReplicasReady, progressing: "False",
				progressingReason: ReasonUpToDate, degraded: "True", degradedReason: ReasonSecretNotFound,
				degradedMessage: "reading spec.auth: Secret users does not exist", observedGeneration: 4},
		},
		{
			name: "rolling out with a surge: RollingOut until no old pod is left, not ScalingDown",
			mc:   newMemcached(3, 3),
			observed: Observed{Deployment: rolledOut(4), Pods: []corev1.Pod{
				pod("cache-a", "10.0.0.1", ready), pod("cache-b", "10.0.0.2", ready), pod("cache-c", "10.0.0.3", ready),
				oldTemplate(pod("cache-d", "10.0.0.4", ready))}},
			want: want{replicas: 4, ready: 4, nodes: []string{"cache-a", "cache-b", "cache-c", "cache-d"},
				serverList: []string{"10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211", "10.0.0.4:11211"},
				available:  "True", availableReason: ReasonAllReplicasReady, progressing: "True",
				progressingReason: ReasonRollingOut, degraded: "False", degradedReason: ReasonAsExpected, observedGeneration: 3},
		},
		{
			name: "a new pod cannot be scheduled: Degraded at once",
			mc:   newMemcached(2, 3),
			observed: Observed{Deployment: rolledOut(3), Pods: []corev1.Pod{
				oldTemplate(pod("cache-a", "10.0.0.1", ready)), oldTemplate(pod("cache-b", "10.0.0.2", ready)),
				withCondition(pod("cache-c", "", running), corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
					Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."})}},
			want: want{replicas: 3, ready: 2, nodes: []string{"cache-a", "cache-b", "cache-c"},
				serverList: []string{"10.0.0.1:11211", "10.0.0.2:11211"},
				available:  "True", availableReason: ReasonAllReplicasReady, progressing: "True",
				progressingReason: ReasonRollingOut, degraded: "True", degradedReason: ReasonPodUnschedulable,
				degradedMessage:    "Pod cache-c cannot be scheduled: 0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
				observedGeneration: 3},
		},
		{
			name: "a new pod's image cannot be pulled: Degraded at once",
			mc:   newMemcached(1, 3),
			observed: Observed{Deployment: rolledOut(2), Pods: []corev1.Pod{
				oldTemplate(pod("cache-a", "10.0.0.1", ready)),
				waiting(pod("cache-b", "10.0.0.2", running), "ImagePullBackOff", `Back-off pulling image "memcached:nope"`)}},
			want: want{replicas: 2, ready: 1, nodes: []string{"cache-a", "cache-b"}, serverList: []string{"10.0.0.1:11211"},
				available: "True", availableReason: ReasonAllReplicasReady, progressing: "True",
				progressingReason: ReasonRollingOut, degraded: "True", degradedReason: ReasonPodFailing,
				degradedMessage:    `Pod cache-b, container memcached: ImagePullBackOff: Back-off pulling image "memcached:nope"`,
				observedGeneration: 3},
		},
		{
			name:     "an object of another owner: OwnershipConflict",
			mc:       newMemcached(1, 2),
			observed: Observed{Deployment: rolledOut(1), Pods: []corev1.Pod{pod("cache-a", "10.0.0.1", ready)}},
			outcome:  Outcome{ApplyError: fmt.Errorf("applying: %w", &ConflictError{Object: "Service cache-headless", Owner: "Memcached cache-headless"})},
			want: want{replicas: 1, ready: 1, nodes: []string{"cache-a"}, serverList: nil, /* not applied: the last list applied stays */
				available: "True", availableReason: ReasonAllReplicasReady, progressing: "False",
				progressingReason: ReasonUpToDate, degraded: "True", degradedReason: ReasonOwnershipConflict,
				degradedMessage: "Service cache-headless exists and is controlled by Memcached cache-headless: it is left as it is; " +
					"delete or rename it to let the operator create its own", observedGeneration: 1},
		},
		{
			name:     "scaled to zero",
			mc:       newMemcached(0, 2),
			observed: Observed{Deployment: rolledOut(0)},
			want: want{available: "False", availableReason: ReasonScaledToZero, progressing: "False",
				progressingReason: ReasonUpToDate, degraded: "False", degradedReason: ReasonAsExpected, observedGeneration: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := compute(tt.mc, tt.observed, tt.outcome, now)
			w := tt.want
			if got.Replicas != w.replicas || got.ReadyReplicas != w.ready || got.ObservedGeneration != w.observedGeneration {
				t.Errorf("replicas %d, ready %d, observedGeneration %d; want %d, %d, %d",
					got.Replicas, got.ReadyReplicas, got.ObservedGeneration, w.replicas, w.ready, w.observedGeneration)
			}
			if !equality.Semantic.DeepEqual(got.Nodes, w.nodes) || !equality.Semantic.DeepEqual(got.ServerList, w.serverList) {
				t.Errorf("nodes %q, serverList %q; want %q, %q", got.Nodes, got.ServerList, w.nodes, w.serverList)
			}
			if got.Selector != "app.kubernetes.io/instance=cache,app.kubernetes.io/name=memcached" {
				t.Errorf("selector %q", got.Selector)
			}
			expectCondition(t, got, cachev1alpha1.ConditionAvailable, w.available, w.availableReason, "")
			expectCondition(t, got, cachev1alpha1.ConditionProgressing, w.progressing, w.progressingReason, w.progressingMessage)
			expectCondition(t, got, cachev1alpha1.ConditionDegraded, w.degraded, w.degradedReason, w.degradedMessage)
			for _, c := range got.Conditions {
				if c.ObservedGeneration != tt.mc.Generation {
					t.Errorf("condition %s has observedGeneration %d, want %d", c.Type, c.ObservedGeneration, tt.mc.Generation)
				}
			}
		})
	}
}

func expectCondition(t *testing.T, s cachev1alpha1.MemcachedStatus, condType string, status metav1.ConditionStatus, reason, message string) {
	t.Helper()
	c := meta.FindStatusCondition(s.Conditions, condType)
	if c == nil {
		t.Fatalf("no %s condition in %+v", condType, s.Conditions)
	}
	if c.Status != status || c.Reason != reason || (message != "" && c.Message != message) {
		t.Errorf("%s = %s/%s %q, want %s/%s %q", condType, c.Status, c.Reason, c.Message, status, reason, message)
	}
	if c.Message == "" {
		t.Errorf("%s has no message", condType)
	}
}

func TestMonitoringReadySaysWhetherPrometheusScrapes(t *testing.T) {
	mc := newMemcached(1, 3)
	mc.Spec.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	got := compute(mc, Observed{Deployment: rolledOut(1)}, Outcome{ServiceMonitorAPIMissing: true}, now)
	expectCondition(t, got, cachev1alpha1.ConditionMonitoringReady, metav1.ConditionFalse, ReasonServiceMonitorAPIMissing, "")
	if c := meta.FindStatusCondition(got.Conditions, cachev1alpha1.ConditionMonitoringReady); c.ObservedGeneration != 3 || !c.LastTransitionTime.Equal(&now) ||
		!strings.Contains(c.Message, "cache-exporter:9150/scrape?target=") {
		t.Errorf("MonitoringReady has observedGeneration %d, lastTransitionTime %v and message %q, want 3, %v and the exporter's address",
			c.ObservedGeneration, c.LastTransitionTime, c.Message, now)
	}

	// Both APIs missing: the message names both.
	got = compute(mc, Observed{Deployment: rolledOut(1)}, Outcome{ServiceMonitorAPIMissing: true, PrometheusRuleAPIMissing: true}, now)
	expectCondition(t, got, cachev1alpha1.ConditionMonitoringReady, metav1.ConditionFalse, ReasonServiceMonitorAPIMissing, "")
	if c := meta.FindStatusCondition(got.Conditions, cachev1alpha1.ConditionMonitoringReady); !strings.Contains(c.Message, "no PrometheusRule API") {
		t.Errorf("MonitoringReady's message %q does not name the missing PrometheusRule API", c.Message)
	}
	// Only the PrometheusRule API missing: its own reason.
	got = compute(mc, Observed{Deployment: rolledOut(1)}, Outcome{PrometheusRuleAPIMissing: true}, now)
	expectCondition(t, got, cachev1alpha1.ConditionMonitoringReady, metav1.ConditionFalse, ReasonPrometheusRuleAPIMissing, "")

	// The APIs there: True, naming the PrometheusRule while alerts are on.
	mc.Status = got
	got = compute(mc, Observed{Deployment: rolledOut(1)}, Outcome{}, now)
	expectCondition(t, got, cachev1alpha1.ConditionMonitoringReady, metav1.ConditionTrue, ReasonServiceMonitorReady,
		"ServiceMonitor cache has Prometheus scrape every memcached pod through the exporter cache-exporter; "+
			"PrometheusRule cache holds its alert rules")

	// A reconcile that could not apply the spec leaves it as it was.
	mc.Status, mc.Generation = got, 4
	got = compute(mc, Observed{Deployment: rolledOut(1)}, Outcome{ServiceMonitorAPIMissing: true, ApplyError: errors.New("boom")}, now)
	expectCondition(t, got, cachev1alpha1.ConditionMonitoringReady, metav1.ConditionTrue, ReasonServiceMonitorReady, "")

	// Without monitoring, the condition goes.
	mc.Spec.Monitoring = nil
	mc.Status = got
	got = compute(mc, Observed{Deployment: rolledOut(1)}, Outcome{}, now)
	if c := meta.FindStatusCondition(got.Conditions, cachev1alpha1.ConditionMonitoringReady); c != nil {
		t.Errorf("MonitoringReady %+v is left without monitoring", c)
	}
	if len(got.Conditions) != 3 {
		t.Errorf("conditions %+v, want Available, Progressing and Degraded", got.Conditions)
	}
}

func TestComputeKeepsTransitionTimeUnlessStatusFlips(t *testing.T) {
	mc := newMemcached(1, 2)
	mc.Status.Conditions = []metav1.Condition{
		{Type: cachev1alpha1.ConditionAvailable, Status: metav1.ConditionFalse, Reason: ReasonReplicasNotReady, LastTransitionTime: earlier},
		{Type: cachev1alpha1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: ReasonAsExpected, LastTransitionTime: earlier},
	}
	got := compute(mc, Observed{Deployment: rolledOut(1), Pods: []corev1.Pod{pod("cache-a", "10.0.0.1", ready)}}, Outcome{}, now)

	if c := meta.FindStatusCondition(got.Conditions, cachev1alpha1.ConditionAvailable); !c.LastTransitionTime.Equal(&now) {
		t.Errorf("Available flipped to True but kept transition time %v", c.LastTransitionTime)
	}
	if c := meta.FindStatusCondition(got.Conditions, cachev1alpha1.ConditionDegraded); !c.LastTransitionTime.Equal(&earlier) {
		t.Errorf("Degraded stayed False but its transition time moved to %v", c.LastTransitionTime)
	}
	// The input is not modified.
	if !mc.Status.Conditions[0].LastTransitionTime.Equal(&earlier) || mc.Status.Conditions[0].Status != metav1.ConditionFalse {
		t.Errorf("Compute modified the Memcached's conditions: %+v", mc.Status.Conditions[0])
	}
}

func TestComputingAgainFromTheSameObservationChangesNothing(t *testing.T) {
	mc := newMemcached(2, 2)
	observed := Observed{Deployment: rolledOut(2), Pods: []corev1.Pod{pod("cache-b", "10.0.0.2", ready), pod("cache-a", "10.0.0.1", ready)}}
	first := compute(mc, observed, Outcome{}, earlier)
	mc.Status = first
	second := compute(mc, observed, Outcome{}, now)
	if !equality.Semantic.DeepEqual(first, second) {
		t.Errorf("a second computation from the same observation differs:\n%+v\n%+v", first, second)
	}
}

func TestAnUndecodableSpecIsReportedAndTheRestKept(t *testing.T) {
	earlier := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(earlier.Add(time.Hour))
	readErr := errors.New("spec.resources.limits.memory: quantities must match the regular expression")
	available := metav1.Condition{Type: cachev1alpha1.ConditionAvailable, Status: metav1.ConditionTrue,
		ObservedGeneration: 1, LastTransitionTime: earlier, Reason: ReasonAllReplicasReady, Message: "2/2 memcached pods are ready"}
	healthy := cachev1alpha1.MemcachedStatus{ObservedGeneration: 1, Replicas: 2, ReadyReplicas: 2, Nodes: []string{"a", "b"},
		Conditions: []metav1.Condition{available, {Type: cachev1alpha1.ConditionDegraded, Status: metav1.ConditionFalse,
			ObservedGeneration: 1, LastTransitionTime: earlier, Reason: ReasonAsExpected}}}

	for name, tc := range map[string]struct {
		current cachev1alpha1.MemcachedStatus
	}{
		"a status written before":   {current: healthy},
		"no status yet":             {},
		"already reported as such":  {current: Undecodable(healthy, 2, readErr, earlier)},
		"another condition of ours": {current: cachev1alpha1.MemcachedStatus{Conditions: []metav1.Condition{available}}},
	} {
		t.Run(name, func(t *testing.T) {
			before := tc.current.DeepCopy()
			got := Undecodable(tc.current, 2, readErr, now)
			if !equality.Semantic.DeepEqual(tc.current, *before) {
				t.Fatalf("Undecodable changed its input")
			}
			degraded := meta.FindStatusCondition(got.Conditions, cachev1alpha1.ConditionDegraded)
			if degraded == nil || degraded.Status != metav1.ConditionTrue || degraded.Reason != ReasonInvalidSpec ||
				degraded.ObservedGeneration != 2 {
				t.Fatalf("Degraded = %+v, want True, %s, generation 2", degraded, ReasonInvalidSpec)
			}
			if !strings.Contains(degraded.Message, readErr.Error()) {
				t.Errorf("the message %q does not say why", degraded.Message)
			}
			if was := meta.FindStatusCondition(tc.current.Conditions, cachev1alpha1.ConditionDegraded); was != nil &&
				was.Status == metav1.ConditionTrue && !degraded.LastTransitionTime.Equal(&was.LastTransitionTime) {
				t.Errorf("the transition time moved while Degraded stayed True")
			}
			// Nothing was observed: the rest stays as it was.
			rest := got.DeepCopy()
			meta.RemoveStatusCondition(&rest.Conditions, cachev1alpha1.ConditionDegraded)
			want := tc.current.DeepCopy()
			meta.RemoveStatusCondition(&want.Conditions, cachev1alpha1.ConditionDegraded)
			if !equality.Semantic.DeepEqual(rest, want) {
				t.Errorf("the rest of the status changed:\n got %+v\nwant %+v", rest, want)
			}
			if again := Undecodable(got, 2, readErr, now); !equality.Semantic.DeepEqual(again, got) {
				t.Errorf("reporting it again changes the status, so every reconcile would write it")
			}
		})
	}
}
