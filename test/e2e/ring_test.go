package e2e

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// stableNames returns the server list of the first n pods of a StatefulSet
// Memcached.
func stableNames(mc *cachev1alpha1.Memcached, n int) []string {
	names := make([]string, 0, n)
	for i := range n {
		names = append(names, fmt.Sprintf("%s-%d.%s-headless.%s.svc:11211", mc.Name, i, mc.Name, mc.Namespace))
	}
	return names
}

func createStatefulMemcached(t *testing.T, ns, name string, size int32, mutate func(*cachev1alpha1.MemcachedSpec)) *cachev1alpha1.Memcached {
	t.Helper()
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cachev1alpha1.MemcachedSpec{Size: size, Workload: cachev1alpha1.WorkloadStatefulSet}}
	if mutate != nil {
		mutate(&mc.Spec)
	}
	NewWithT(t).Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	return mc
}

func TestRingKeepsItsServersWhilePodsRestart(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := createStatefulMemcached(t, ns, "ring", 5, nil)
	expectConverged(t, mc, 5)
	g.Expect(getMemcached(t, g, mc).Status.ServerList).To(Equal(stableNames(mc, 5)))
	servers := func(g Gomega) string {
		cm := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "ring-servers"}, cm)).To(Succeed())
		return cm.Data[resources.ServersKey]
	}
	list := ""
	for _, s := range stableNames(mc, 5) {
		list += s + "\n"
	}
	g.Eventually(servers).Should(Equal(list))

	// A pod deleted comes back with its name, and keeps its place: every
	// server list the Memcached's status shows meanwhile is the same.
	pods := watchPods(t, mc)
	lists := watchServerLists(t, mc)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ring-2"}}
	g.Expect(k8sClient.Delete(t.Context(), pod)).To(Succeed())
	g.Eventually(func() []string { return pods.podUIDs("ring-2") }).Should(HaveLen(2), "ring-2 did not come back")
	expectConverged(t, mc, 5)
	g.Expect(lists.seen()).To(HaveEach(Equal(stableNames(mc, 5))), "the list moved while ring-2 restarted")
	g.Expect(lists.statusWrites()).To(BeNumerically(">", 0), "the status did not follow the restart")
	g.Expect(servers(g)).To(Equal(list))
}

func TestRingScaleDownRemovesTheLastMembersAfterTheListShrank(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := createStatefulMemcached(t, ns, "ring", 5, func(s *cachev1alpha1.MemcachedSpec) {
		s.ScaleDownDrainSeconds = ptr.To[int32](5)
	})
	expectConverged(t, mc, 5)
	pods := watchPods(t, mc)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 3 })
	var drainingSince time.Time
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.ServerList).To(Equal(stableNames(mc, 3)))
		g.Expect(current.Status.DrainingSince).NotTo(BeNil())
		drainingSince = current.Status.DrainingSince.Time
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	for _, name := range []string{"ring-3", "ring-4"} {
		_, deleted := pods.deletedAt(name)
		g.Expect(deleted).To(BeFalse(), "%s went before the list shrank", name)
	}
	expectConverged(t, mc, 3)
	for _, name := range []string{"ring-3", "ring-4"} {
		at, deleted := pods.deletedAt(name)
		g.Expect(deleted).To(BeTrue(), "%s was not removed", name)
		g.Expect(at.Sub(drainingSince)).To(BeNumerically(">=", 5*time.Second), "%s went before it drained", name)
	}
	for _, name := range []string{"ring-0", "ring-1", "ring-2"} {
		g.Expect(pods.podUIDs(name)).To(HaveLen(1), "%s was replaced by the scale-down", name)
	}
	g.Expect(getMemcached(t, g, mc).Status.DrainingSince).To(BeNil())
}

func TestSwitchingWorkloadsNeverLeavesTheCacheWithoutPods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := createMemcached(t, ns, 3)
	expectConverged(t, mc, 3)
	pods := watchPods(t, mc)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Workload = cachev1alpha1.WorkloadStatefulSet })
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), &appsv1.Deployment{}))
	}, 2*time.Minute).Should(BeTrue())
	expectConverged(t, mc, 3)
	g.Expect(getMemcached(t, g, mc).Status.ServerList).To(Equal(stableNames(mc, 3)))
	g.Expect(pods.fewest()).To(BeNumerically(">=", 3), "fewer than 3 pods were ready during the switch")

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Workload = cachev1alpha1.WorkloadDeployment })
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), &appsv1.StatefulSet{}))
	}, 2*time.Minute).Should(BeTrue())
	expectConverged(t, mc, 3)
	g.Expect(getMemcached(t, g, mc).Status.ServerList).To(HaveLen(3))
	g.Expect(getMemcached(t, g, mc).Status.ServerList).NotTo(ContainElement(ContainSubstring("headless")))
	g.Expect(pods.fewest()).To(BeNumerically(">=", 3), "fewer than 3 pods were ready during the switch back")
}

func TestWarmRestartGivesEachPodAVolume(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, restricted)
	mc := createStatefulMemcached(t, ns, "warm", 3, func(s *cachev1alpha1.MemcachedSpec) {
		s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
	})
	expectConverged(t, mc, 3)
	claims := func(g Gomega) []string {
		list := &corev1.PersistentVolumeClaimList{}
		g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(ns))).To(Succeed())
		var bound []string
		for _, c := range list.Items {
			if c.Status.Phase == corev1.ClaimBound && c.DeletionTimestamp == nil {
				bound = append(bound, c.Name)
			}
		}
		return bound
	}
	g.Expect(claims(g)).To(ConsistOf("memory-file-warm-0", "memory-file-warm-1", "memory-file-warm-2"))

	// A scale-down deletes the volume of the pod it removes: its cache would
	// be stale if the pod came back.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 2; s.ScaleDownDrainSeconds = ptr.To[int32](0) })
	expectConverged(t, mc, 2)
	g.Eventually(claims).Should(ConsistOf("memory-file-warm-0", "memory-file-warm-1"))
}

// Turning warm restart on for running pods recreates the StatefulSet with a
// claim template. It adopts the running pods, which lack the volume, and the
// StatefulSet controller cannot add it to them: the operator replaces them,
// one at a time.
func TestTurningWarmRestartOnGivesRunningPodsTheirVolumes(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, restricted)
	mc := createStatefulMemcached(t, ns, "warming", 3, nil)
	expectConverged(t, mc, 3)
	pods := watchPods(t, mc)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true} })
	g.Eventually(func(g Gomega) {
		list := &corev1.PodList{}
		g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(ns),
			client.MatchingLabels(resources.SelectorLabels(mc)))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(3))
		for _, p := range list.Items {
			g.Expect(p.Spec.Volumes).To(ContainElement(HaveField("PersistentVolumeClaim.ClaimName",
				resources.MemoryFileClaim+"-"+p.Name)), "%s has no memory file volume", p.Name)
		}
	}, 3*time.Minute).Should(Succeed())
	expectConverged(t, mc, 3)
	g.Expect(pods.fewest()).To(BeNumerically(">=", 2), "more than one pod was down at once")
}
