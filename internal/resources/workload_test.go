package resources

import (
	"maps"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func deploymentOf(t *testing.T, mc *cachev1alpha1.Memcached, in Inputs) *appsv1.Deployment {
	t.Helper()
	return object[appsv1.Deployment](t, Build(mc, in), DeploymentKind, mc.Name)
}

func statefulSetOf(t *testing.T, mc *cachev1alpha1.Memcached, in Inputs) *appsv1.StatefulSet {
	t.Helper()
	return object[appsv1.StatefulSet](t, Build(mc, in), StatefulSetKind, mc.Name)
}

func TestDeploymentIsNamedLabelledAndOwnedLikeItsMemcached(t *testing.T) {
	for _, size := range []int32{0, 1, 3} {
		mc := newMemcached("example-memcached", size)
		d := deploymentOf(t, mc, inputsFor(mc))

		if d.Name != mc.Name || d.Namespace != mc.Namespace {
			t.Errorf("size %d: Deployment is %s/%s, want %s/%s", size, d.Namespace, d.Name, mc.Namespace, mc.Name)
		}
		if ptr.Deref(d.Spec.Replicas, -1) != size {
			t.Errorf("size %d: replicas = %v, want %d", size, d.Spec.Replicas, size)
		}
		wantLabels := map[string]string{
			"app.kubernetes.io/name":       "memcached",
			"app.kubernetes.io/instance":   "example-memcached",
			"app.kubernetes.io/managed-by": "memcached-operator",
		}
		if !maps.Equal(d.Labels, wantLabels) || !maps.Equal(d.Spec.Template.Labels, wantLabels) {
			t.Errorf("size %d: labels %v, pod labels %v, want %v", size, d.Labels, d.Spec.Template.Labels, wantLabels)
		}
		owner := d.OwnerReferences[0]
		if owner.Kind != "Memcached" || owner.APIVersion != "cache.example.com/v1alpha1" || owner.Name != mc.Name {
			t.Errorf("size %d: owner reference %+v is not the Memcached", size, owner)
		}
	}
}

func TestDeploymentRollsOutOnePodAtATime(t *testing.T) {
	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) { s.MinReadySeconds = ptr.To[int32](45) })
	d := deploymentOf(t, mc, inputsFor(mc))
	rolling := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || rolling == nil ||
		ptr.Deref(rolling.MaxUnavailable, intstr.FromInt32(-1)) != intstr.FromInt32(0) ||
		ptr.Deref(rolling.MaxSurge, intstr.FromInt32(-1)) != intstr.FromInt32(1) {
		t.Errorf("strategy %+v, want a rolling update that adds one pod before it removes one", d.Spec.Strategy)
	}
	if d.Spec.MinReadySeconds != 45 {
		t.Errorf("minReadySeconds = %d, want 45", d.Spec.MinReadySeconds)
	}
	if ptr.Deref(d.Spec.ProgressDeadlineSeconds, 0) > 120 {
		t.Errorf("progressDeadlineSeconds = %d: a stuck rollout would show only after minutes", *d.Spec.ProgressDeadlineSeconds)
	}
}

func TestProgressDeadlineOutlastsMinReadySeconds(t *testing.T) {
	// The API server refuses a Deployment whose progress deadline is not
	// above minReadySeconds.
	for _, seconds := range []int32{0, 59, 60, 61, 3600} {
		mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) { s.MinReadySeconds = ptr.To(seconds) })
		d := deploymentOf(t, mc, inputsFor(mc))
		if deadline := ptr.Deref(d.Spec.ProgressDeadlineSeconds, 0); deadline <= d.Spec.MinReadySeconds {
			t.Errorf("minReadySeconds %d: progressDeadlineSeconds = %d, want more", seconds, deadline)
		}
	}
}

func TestSelectorsKeepMemcachedsApart(t *testing.T) {
	a := deploymentOf(t, newMemcached("a", 1), Inputs{})
	b := deploymentOf(t, newMemcached("b", 1), Inputs{})
	for _, d := range []*appsv1.Deployment{a, b} {
		selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if !selector.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: selector %s does not match its own pods %v", d.Name, selector, d.Spec.Template.Labels)
		}
		if _, ok := d.Spec.Selector.MatchLabels[ManagedByLabel]; ok {
			t.Errorf("%s: selector %v holds a label that is not part of the pods' identity", d.Name, d.Spec.Selector.MatchLabels)
		}
	}
	selectorA, _ := metav1.LabelSelectorAsSelector(a.Spec.Selector)
	if selectorA.Matches(labels.Set(b.Spec.Template.Labels)) {
		t.Errorf("selector of a %s matches the pods of b %v", selectorA, b.Spec.Template.Labels)
	}
	exporter := object[appsv1.Deployment](t, Build(withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	}), Inputs{}), DeploymentKind, "mc-exporter")
	if labels.SelectorFromSet(SelectorLabels(newMemcached("mc", 1))).Matches(labels.Set(exporter.Spec.Template.Labels)) {
		t.Errorf("the memcached pods' selector matches the exporter's pods %v", exporter.Spec.Template.Labels)
	}
}

func TestStatefulSetRunsThePlannedReplicasInParallel(t *testing.T) {
	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) { s.Workload = cachev1alpha1.WorkloadStatefulSet })
	in := inputsFor(mc)
	in.Servers.StatefulSetReplicas = 5 // draining two pods of a scale-down to 3
	s := statefulSetOf(t, mc, in)
	if ptr.Deref(s.Spec.Replicas, 0) != 5 {
		t.Errorf("replicas = %v, want the 5 of the inputs", s.Spec.Replicas)
	}
	if s.Spec.ServiceName != "mc-headless" || s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("serviceName %q, pod management %q; want mc-headless and Parallel", s.Spec.ServiceName, s.Spec.PodManagementPolicy)
	}
	if u := s.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateStatefulSetStrategyType || u.RollingUpdate == nil ||
		ptr.Deref(u.RollingUpdate.MaxUnavailable, intstr.FromInt32(-1)) != intstr.FromInt32(1) || s.Spec.MinReadySeconds != 10 {
		t.Errorf("update strategy %+v, minReadySeconds %d; want one pod at a time, settled 10 s", u, s.Spec.MinReadySeconds)
	}
	if !maps.Equal(s.Spec.Selector.MatchLabels, SelectorLabels(mc)) {
		t.Errorf("selector %v, want %v", s.Spec.Selector.MatchLabels, SelectorLabels(mc))
	}
	if len(s.Spec.VolumeClaimTemplates) != 0 || s.Spec.PersistentVolumeClaimRetentionPolicy != nil {
		t.Errorf("volume claims %+v without warm restart", s.Spec.VolumeClaimTemplates)
	}
}

func TestWarmRestartGivesEachPodAMemoryFileVolume(t *testing.T) {
	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.Workload = cachev1alpha1.WorkloadStatefulSet
		s.MemoryMB = 1024
		s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true, StorageClassName: ptr.To("fast")}
	})
	s := statefulSetOf(t, mc, inputsFor(mc))
	if len(s.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("volume claim templates %+v, want one", s.Spec.VolumeClaimTemplates)
	}
	claim := s.Spec.VolumeClaimTemplates[0]
	size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if claim.Name != MemoryFileClaim || ptr.Deref(claim.Spec.StorageClassName, "") != "fast" ||
		size.Cmp(resource.MustParse("1024Mi")) <= 0 {
		t.Errorf("claim %s of class %v for %s, want %s of class fast above the 1024Mi of memoryMB",
			claim.Name, claim.Spec.StorageClassName, size.String(), MemoryFileClaim)
	}
	policy := s.Spec.PersistentVolumeClaimRetentionPolicy
	if policy == nil || policy.WhenScaled != appsv1.DeletePersistentVolumeClaimRetentionPolicyType ||
		policy.WhenDeleted != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		t.Errorf("retention %+v: a scale-down must delete the claims, whose cache would be stale", policy)
	}
}

func TestTemplateHashFollowsThePodTemplate(t *testing.T) {
	hash := func(mc *cachev1alpha1.Memcached) (string, string) {
		d := deploymentOf(t, mc, inputsFor(mc))
		return d.Annotations[TemplateHashAnnotation], d.Spec.Template.Annotations[TemplateHashAnnotation]
	}
	base, onPods := hash(newMemcached("mc", 3))
	if base == "" || base != onPods {
		t.Fatalf("the Deployment's template digest %q and its pods' %q differ", base, onPods)
	}
	if scaled, _ := hash(newMemcached("mc", 5)); scaled != base {
		t.Error("scaling changed the template digest")
	}
	if tuned, _ := hash(withSpec(func(s *cachev1alpha1.MemcachedSpec) { s.Threads = 8 })); tuned == base {
		t.Error("changing the threads left the template digest as it was")
	}
	if monitored, _ := hash(withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	})); monitored != base {
		t.Error("turning monitoring on changed the memcached pods' template: it would restart them")
	}
}
