package e2e

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/status"
)

func TestATemplateThatCannotRunTakesNoPodAway(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := createMemcached(t, ns, 4)
	expectConverged(t, mc, 4)
	pods := watchPods(t, mc)

	// No node has this label: the new pod cannot be scheduled.
	changed := time.Now()
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.NodeSelector = map[string]string{"disk": "none"} })
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(status.ReasonPodUnschedulable))
		g.Expect(c.Message).To(ContainSubstring("didn't match Pod's node affinity/selector"))
	}, 30*time.Second).Should(Succeed())
	t.Logf("Degraded %.1fs after the change", time.Since(changed).Seconds())

	// Every old pod keeps serving while the new one cannot start: the
	// Deployment controller has made its move on the new template (one pod
	// more, which cannot start), and the operator, reconciling the stuck
	// rollout, takes none away either.
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), d)).To(Succeed())
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		g.Expect(d.Status.UpdatedReplicas).To(Equal(int32(1)))
		g.Expect(d.Status.Replicas).To(Equal(int32(5)))
		g.Expect(d.Status.AvailableReplicas).To(Equal(int32(4)))
	}).Should(Succeed())
	reconcileNow(t, mc)
	current := getMemcached(t, g, mc)
	g.Expect(current.Status.ReadyReplicas).To(Equal(int32(4)))
	g.Expect(meta.IsStatusConditionTrue(current.Status.Conditions, cachev1alpha1.ConditionAvailable)).To(BeTrue())
	g.Expect(pods.fewest()).To(Equal(4), "a serving pod was taken away")

	// Undoing the change lets the rollout end with every pod serving.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.NodeSelector = nil })
	expectConverged(t, mc, 4)
	g.Expect(pods.fewest()).To(Equal(4), "a serving pod was taken away")
}

func TestARolloutReplacesOnePodAtATime(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := createMemcached(t, ns, 3)
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.MinReadySeconds = ptr.To[int32](2) })
	expectConverged(t, mc, 3)
	pods := watchPods(t, mc)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Threads = 2 })
	g.Eventually(func(g Gomega) []string {
		return runningPods(g, getMemcached(t, g, mc))
	}, 2*time.Minute).Should(HaveLen(3))
	expectConverged(t, mc, 3)
	g.Expect(pods.fewest()).To(Equal(3), "the rollout took a serving pod away before its replacement was ready")
}
