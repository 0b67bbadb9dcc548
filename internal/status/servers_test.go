package status

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// statefulMemcached returns a StatefulSet Memcached "cache" of size, which
// published the first published members of its ring.
func statefulMemcached(size int32, published int) *cachev1alpha1.Memcached {
	mc := newMemcached(size, 2)
	mc.Spec.Workload = cachev1alpha1.WorkloadStatefulSet
	mc.Spec.ScaleDownDrainSeconds = ptr.To[int32](30)
	mc.Status.ServerList = names(published)
	return mc
}

// names returns the stable names of the members 0..n-1 of "cache".
func names(n int) []string {
	list := make([]string, 0, n)
	for i := range n {
		list = append(list, fmt.Sprintf("cache-%d.cache-headless.ns.svc:11211", i))
	}
	return list
}

// statefulPods returns pods cache-0 ... of a StatefulSet, ready or not.
func statefulPods(readiness ...bool) []corev1.Pod {
	pods := make([]corev1.Pod, 0, len(readiness))
	for i, r := range readiness {
		state := running
		if r {
			state = ready
		}
		p := pod(fmt.Sprintf("cache-%d", i), fmt.Sprintf("10.1.0.%d", i), state)
		p.OwnerReferences[0].Kind = "StatefulSet"
		pods = append(pods, p)
	}
	return pods
}

// statefulSet returns a StatefulSet running replicas, of which available
// pods are available.
func statefulSet(replicas, available int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Generation: 1},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To(replicas)},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: replicas, UpdatedReplicas: replicas,
			ReadyReplicas: available, AvailableReplicas: available},
	}
}

func TestStatefulSetServersArePublishedInOrderAndDrainedBeforeTheyGo(t *testing.T) {
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	tests := []struct {
		name          string
		mc            *cachev1alpha1.Memcached
		drainingSince *metav1.Time
		observed      Observed
		wantList      []string
		wantReplicas  int32
		wantDraining  *metav1.Time
		wantRequeue   time.Duration
		// at is when, after now, the plan is made.
		at time.Duration
	}{
		{
			name: "new: nothing to publish yet", mc: statefulMemcached(3, 0),
			wantReplicas: 3,
		},
		{
			name: "members are published in order as they become ready", mc: statefulMemcached(3, 0),
			observed: Observed{StatefulSet: statefulSet(3, 2), Pods: statefulPods(true, false, true)},
			wantList: names(1), wantReplicas: 3,
		},
		{
			name: "a restarting pod keeps its place", mc: statefulMemcached(3, 3),
			observed: Observed{StatefulSet: statefulSet(3, 2), Pods: statefulPods(true, false, true)},
			wantList: names(3), wantReplicas: 3,
		},
		{
			name: "a deleted pod keeps its place", mc: statefulMemcached(3, 3),
			observed: Observed{StatefulSet: statefulSet(3, 2), Pods: slices.Delete(statefulPods(true, true, true), 1, 2)},
			wantList: names(3), wantReplicas: 3,
		},
		{
			name: "scale-up: new members join once ready, at the end", mc: statefulMemcached(5, 3),
			observed: Observed{StatefulSet: statefulSet(5, 4), Pods: statefulPods(true, true, true, true, false)},
			wantList: names(4), wantReplicas: 5,
		},
		{
			name: "scale-up: a later member never joins before an earlier one", mc: statefulMemcached(5, 3),
			observed: Observed{StatefulSet: statefulSet(5, 4), Pods: statefulPods(true, true, true, false, true)},
			wantList: names(3), wantReplicas: 5,
		},
		{
			name: "scale-down: the list shrinks first, the pods drain", mc: statefulMemcached(3, 5),
			observed: Observed{StatefulSet: statefulSet(5, 5), Pods: statefulPods(true, true, true, true, true)},
			wantList: names(3), wantReplicas: 5, wantDraining: &now, wantRequeue: 30 * time.Second,
		},
		{
			name: "scale-down: draining", mc: statefulMemcached(3, 3), drainingSince: at(-10 * time.Second),
			observed: Observed{StatefulSet: statefulSet(5, 5), Pods: statefulPods(true, true, true, true, true)},
			wantList: names(3), wantReplicas: 5, wantDraining: at(-10 * time.Second), wantRequeue: 20 * time.Second,
		},
		{
			name: "scale-down: drained, the last pods go", mc: statefulMemcached(3, 3), drainingSince: at(-31 * time.Second),
			observed: Observed{StatefulSet: statefulSet(5, 5), Pods: statefulPods(true, true, true, true, true)},
			wantList: names(3), wantReplicas: 3,
		},
		{
			name: "scale-down without a drain, at a fraction of a second: the last pods go at once",
			mc: func() *cachev1alpha1.Memcached {
				mc := statefulMemcached(3, 5)
				mc.Spec.ScaleDownDrainSeconds = ptr.To[int32](0)
				return mc
			}(),
			at:       300 * time.Millisecond,
			observed: Observed{StatefulSet: statefulSet(5, 5), Pods: statefulPods(true, true, true, true, true)},
			wantList: names(3), wantReplicas: 3,
		},
		{
			name: "scale-up while draining: the drained pods rejoin", mc: statefulMemcached(6, 3), drainingSince: at(-10 * time.Second),
			observed: Observed{StatefulSet: statefulSet(5, 5), Pods: statefulPods(true, true, true, true, true)},
			wantList: names(5), wantReplicas: 6,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.mc.Status.DrainingSince = tt.drainingSince
			got := PlanServers(tt.mc, tt.observed, metav1.NewTime(now.Add(tt.at)))
			if !slices.Equal(got.List, tt.wantList) {
				t.Errorf("list %q, want %q", got.List, tt.wantList)
			}
			if got.StatefulSetReplicas != tt.wantReplicas || got.RequeueAfter != tt.wantRequeue {
				t.Errorf("replicas %d, requeue after %s; want %d, %s", got.StatefulSetReplicas, got.RequeueAfter, tt.wantReplicas, tt.wantRequeue)
			}
			if (got.DrainingSince == nil) != (tt.wantDraining == nil) ||
				(got.DrainingSince != nil && !got.DrainingSince.Equal(tt.wantDraining)) {
				t.Errorf("draining since %v, want %v", got.DrainingSince, tt.wantDraining)
			}
		})
	}
}

// The API server keeps a status time to the second. A drain must still last
// all its seconds once the time it began is read back.
func TestADrainLastsItsSecondsOnceWrittenAndReadBack(t *testing.T) {
	const drain = 30 * time.Second
	observed := Observed{StatefulSet: statefulSet(5, 5), Pods: statefulPods(true, true, true, true, true)}
	for _, fraction := range []time.Duration{0, time.Nanosecond, 300 * time.Millisecond, time.Second - time.Nanosecond} {
		began := now.Add(fraction)
		mc := statefulMemcached(3, 5)
		plan := PlanServers(mc, observed, metav1.NewTime(began))
		if plan.DrainingSince == nil {
			t.Fatalf("a scale-down at %v does not drain", began)
		}
		written, err := json.Marshal(plan.DrainingSince)
		if err != nil {
			t.Fatal(err)
		}
		readBack := &metav1.Time{}
		if err := json.Unmarshal(written, readBack); err != nil {
			t.Fatal(err)
		}
		mc.Status.ServerList, mc.Status.DrainingSince = plan.List, readBack
		for _, after := range []time.Duration{0, drain / 2, drain - time.Millisecond} {
			at := began.Add(after)
			got := PlanServers(mc, observed, metav1.NewTime(at))
			if got.StatefulSetReplicas != 5 || got.RequeueAfter <= 0 || at.Add(got.RequeueAfter).Before(began.Add(drain)) {
				t.Errorf("began %v, read back as %v: %s later, replicas %d, requeue after %s; the drain must last %s",
					began, readBack, after, got.StatefulSetReplicas, got.RequeueAfter, drain)
			}
		}
	}
}

func TestSwitchingWorkloadsKeepsTheOldListUntilTheNewWorkloadIsReady(t *testing.T) {
	deploymentPods := []corev1.Pod{pod("cache-7d9f-a", "10.0.0.1", ready), pod("cache-7d9f-b", "10.0.0.2", ready)}
	addresses := []string{"10.0.0.1:11211", "10.0.0.2:11211"}

	// To a StatefulSet: the Deployment's list until the StatefulSet is ready.
	mc := statefulMemcached(2, 0)
	mc.Status.ServerList = addresses
	starting := Observed{Deployment: rolledOut(2), StatefulSet: statefulSet(2, 1),
		Pods: append(slices.Clone(deploymentPods), statefulPods(true, false)...)}
	got := PlanServers(mc, starting, now)
	if !slices.Equal(got.List, addresses) || got.RetirePreviousWorkload {
		t.Errorf("starting: list %q, retire %v; want the Deployment's %q, and keep it", got.List, got.RetirePreviousWorkload, addresses)
	}
	done := Observed{Deployment: rolledOut(2), StatefulSet: statefulSet(2, 2),
		Pods: append(slices.Clone(deploymentPods), statefulPods(true, true)...)}
	got = PlanServers(mc, done, now)
	if !slices.Equal(got.List, names(2)) || !got.RetirePreviousWorkload {
		t.Errorf("ready: list %q, retire %v; want every stable name at once, and retire the Deployment", got.List, got.RetirePreviousWorkload)
	}

	// To a StatefulSet, while no pod of the Deployment is ready: its empty
	// list stays, however many reconciles run.
	mc = statefulMemcached(2, 0)
	none := Observed{Deployment: rolledOut(2), StatefulSet: statefulSet(2, 1), Pods: statefulPods(true, false)}
	for range 2 {
		got = PlanServers(mc, none, now)
		if len(got.List) > 0 || got.RetirePreviousWorkload {
			t.Errorf("no Deployment pod ready: list %q, retire %v; want none, and keep the Deployment", got.List, got.RetirePreviousWorkload)
		}
		mc.Status.ServerList = got.List
	}

	// A switch to a Deployment undone before the Deployment was ready: the
	// StatefulSet, the older, serves on with its stable names.
	mc = statefulMemcached(2, 2)
	undone := Observed{Deployment: rolledOut(2), StatefulSet: statefulSet(2, 1), Pods: statefulPods(true, true)}
	undone.Deployment.CreationTimestamp = now
	undone.StatefulSet.CreationTimestamp = earlier
	got = PlanServers(mc, undone, now)
	if !slices.Equal(got.List, names(2)) || got.RetirePreviousWorkload {
		t.Errorf("undone: list %q, retire %v; want the StatefulSet's %q, and keep the Deployment until it is ready", got.List, got.RetirePreviousWorkload, names(2))
	}

	// Back to a Deployment: the stable names until the Deployment is ready.
	mc = newMemcached(2, 3)
	mc.Status.ServerList = names(2)
	starting = Observed{Deployment: rolledOut(2), StatefulSet: statefulSet(2, 2),
		Pods: append(statefulPods(true, true), deploymentPods[0])}
	starting.Deployment.Status.AvailableReplicas = 1
	got = PlanServers(mc, starting, now)
	if !slices.Equal(got.List, names(2)) || got.RetirePreviousWorkload {
		t.Errorf("starting: list %q, retire %v; want the StatefulSet's %q, and keep it", got.List, got.RetirePreviousWorkload, names(2))
	}
	done = Observed{Deployment: rolledOut(2), StatefulSet: statefulSet(2, 2),
		Pods: append(statefulPods(true, true), deploymentPods...)}
	got = PlanServers(mc, done, now)
	if !slices.Equal(got.List, addresses) || !got.RetirePreviousWorkload {
		t.Errorf("ready: list %q, retire %v; want the Deployment's pods' %q, and retire the StatefulSet", got.List, got.RetirePreviousWorkload, addresses)
	}
}

// TestAPlanThatWasNotAppliedIsNotReported scales a ring down in the same
// change that names a Secret that does not exist: nothing is applied, so the
// status keeps the list the servers ConfigMap still publishes, and no drain
// begins until the change can be applied.
func TestAPlanThatWasNotAppliedIsNotReported(t *testing.T) {
	mc := statefulMemcached(2, 3)
	observed := Observed{StatefulSet: statefulSet(3, 3), Pods: statefulPods(true, true, true)}
	plan := PlanServers(mc, observed, now)
	if len(plan.List) != 2 || plan.DrainingSince == nil {
		t.Fatalf("The plan %+v does not shrink the list and drain", plan)
	}
	refused := Outcome{SpecError: &SpecError{Reason: ReasonSecretNotFound, Message: "Secret users does not exist"}}
	got := Compute(mc, observed, refused, plan, now)
	if !slices.Equal(got.ServerList, mc.Status.ServerList) || got.DrainingSince != nil {
		t.Errorf("With nothing applied, the status publishes %q draining since %v, want %q and no drain",
			got.ServerList, got.DrainingSince, mc.Status.ServerList)
	}
	applied := Compute(mc, observed, Outcome{}, plan, now)
	if len(applied.ServerList) != 2 || applied.DrainingSince == nil {
		t.Errorf("Once applied, the status publishes %q draining since %v", applied.ServerList, applied.DrainingSince)
	}
}

func TestPodWithoutItsVolumeIsReplacedOneAtATime(t *testing.T) {
	warm := newMemcached(3, 2)
	warm.Spec.Workload = cachev1alpha1.WorkloadStatefulSet
	warm.Spec.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "cache", UID: "set-2"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: resources.MemoryFileClaim}}}},
	}
	withoutTemplate := set.DeepCopy()
	withoutTemplate.Spec.VolumeClaimTemplates = nil
	member := func(name string, state podState, volume bool) corev1.Pod {
		p := pod(name, "10.0.0.1", state)
		p.OwnerReferences = []metav1.OwnerReference{{Kind: "StatefulSet", Name: "cache", UID: "set-2", Controller: ptr.To(true)}}
		if volume {
			p.Spec.Volumes = []corev1.Volume{{Name: resources.MemoryFileClaim, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: resources.MemoryFileClaim + "-" + name}}}}
		}
		return p
	}
	for _, tt := range []struct {
		name string
		mc   *cachev1alpha1.Memcached
		set  *appsv1.StatefulSet
		pods []corev1.Pod
		want string
	}{
		{"every pod lacks it: the lowest ordinal first", warm, set,
			[]corev1.Pod{member("cache-0", ready, false), member("cache-1", ready, false), member("cache-2", ready, false)}, "cache-0"},
		{"the others next", warm, set,
			[]corev1.Pod{member("cache-0", ready, true), member("cache-1", ready, false), member("cache-2", ready, false)}, "cache-1"},
		{"none while one is going", warm, set,
			[]corev1.Pod{member("cache-0", deleting, false), member("cache-1", ready, false), member("cache-2", ready, false)}, ""},
		{"none while one is missing", warm, set,
			[]corev1.Pod{member("cache-1", ready, false), member("cache-2", ready, false)}, ""},
		{"none while one is not ready", warm, set,
			[]corev1.Pod{member("cache-0", running, true), member("cache-1", ready, false), member("cache-2", ready, false)}, ""},
		{"none when every pod has it", warm, set,
			[]corev1.Pod{member("cache-0", ready, true), member("cache-1", ready, true), member("cache-2", ready, true)}, ""},
		{"none before the StatefulSet has the claim template", warm, withoutTemplate,
			[]corev1.Pod{member("cache-0", ready, false), member("cache-1", ready, false), member("cache-2", ready, false)}, ""},
		{"none without a claim template in the spec", newMemcached(3, 2), set,
			[]corev1.Pod{member("cache-0", ready, false), member("cache-1", ready, false), member("cache-2", ready, false)}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := PodWithoutItsVolume(tt.mc, resources.ClaimTemplate(tt.mc, resources.Inputs{}), Observed{StatefulSet: tt.set, Pods: tt.pods})
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != tt.want {
				t.Errorf("replaces %q, want %q", name, tt.want)
			}
		})
	}
}
