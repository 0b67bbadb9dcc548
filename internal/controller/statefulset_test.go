package controller

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// statefulSetOf waits for the StatefulSet of mc to exist and returns it.
func statefulSetOf(t *testing.T, mc *cachev1alpha1.Memcached) *appsv1.StatefulSet {
	t.Helper()
	s := &appsv1.StatefulSet{}
	NewWithT(t).Eventually(func() error {
		return k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), s)
	}).Should(Succeed())
	return s
}

// createStatefulPods creates the pods 0..n-1 of mc's StatefulSet, ready, as
// the StatefulSet controller and a kubelet would.
func createStatefulPods(t *testing.T, mc *cachev1alpha1.Memcached, n int) {
	t.Helper()
	set := statefulSetOf(t, mc)
	for i := range n {
		pod := createPod(t, mc, fmt.Sprintf("%s-%d", mc.Name, i))
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: set.Name,
			UID: set.UID, Controller: ptr.To(true)}}
		pod.Annotations = map[string]string{resources.TemplateHashAnnotation: set.Annotations[resources.TemplateHashAnnotation]}
		if err := k8sClient.Update(t.Context(), pod); err != nil {
			t.Fatalf("Failed to update pod: %v", err)
		}
		setPodReady(t, pod, fmt.Sprintf("10.2.0.%d", i))
	}
}

// orphanedByTheGarbageCollector waits for the StatefulSet of mc to be
// deleted leaving its pods, then does what the garbage collector, which
// envtest does not run, does: it orphans the pods and lets it go.
func orphanedByTheGarbageCollector(t *testing.T, mc *cachev1alpha1.Memcached) {
	t.Helper()
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		deleting := statefulSetOf(t, mc)
		g.Expect(deleting.DeletionTimestamp).NotTo(BeNil())
		g.Expect(deleting.Finalizers).To(ContainElement(metav1.FinalizerOrphanDependents))
	}).Should(Succeed())
	deleting := statefulSetOf(t, mc)
	deleting.Finalizers = nil
	g.Expect(k8sClient.Update(t.Context(), deleting)).To(Succeed())
}

// setStatefulSetReady reports, as the StatefulSet controller would, that
// mc's StatefulSet runs its replicas, all available.
func setStatefulSetReady(t *testing.T, mc *cachev1alpha1.Memcached) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		s := statefulSetOf(t, mc)
		n := ptr.Deref(s.Spec.Replicas, 0)
		s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: n, ReadyReplicas: n,
			AvailableReplicas: n, UpdatedReplicas: n, CurrentReplicas: n}
		return k8sClient.Status().Update(t.Context(), s)
	}).Should(Succeed())
}

func stableNames(mc *cachev1alpha1.Memcached, n int) []string {
	names := make([]string, 0, n)
	for i := range n {
		names = append(names, fmt.Sprintf("%s-%d.%s-headless.%s.svc:11211", mc.Name, i, mc.Name, mc.Namespace))
	}
	return names
}

func serverListOf(t *testing.T, mc *cachev1alpha1.Memcached) func(Gomega) []string {
	return func(g Gomega) []string { return getMemcached(t, g, mc).Status.ServerList }
}

func TestStatefulSetPublishesStableNames(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ring"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 3, Workload: cachev1alpha1.WorkloadStatefulSet,
			ScaleDownDrainSeconds: ptr.To[int32](3600)}}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	set := statefulSetOf(t, mc)
	g.Expect(set.Spec.ServiceName).To(Equal("ring-headless"))
	g.Expect(apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), &appsv1.Deployment{}))).To(BeTrue())

	createStatefulPods(t, mc, 3)
	g.Eventually(serverListOf(t, mc)).Should(Equal(stableNames(mc, 3)))
	g.Eventually(func(g Gomega) string {
		cm := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "ring-servers"}, cm)).To(Succeed())
		return cm.Data[resources.ServersCSVKey]
	}).Should(Equal(stableNames(mc, 3)[0] + "," + stableNames(mc, 3)[1] + "," + stableNames(mc, 3)[2]))

	// A pod restarting keeps its place.
	pod := &corev1.Pod{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "ring-1"}, pod)).To(Succeed())
	pod.Status.Conditions[0].Status = corev1.ConditionFalse
	g.Expect(k8sClient.Status().Update(t.Context(), pod)).To(Succeed())
	// In the status that tells it is not ready, and after one more
	// reconcile.
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.ReadyReplicas).To(Equal(int32(2)))
		g.Expect(current.Status.ServerList).To(Equal(stableNames(mc, 3)))
	}).Should(Succeed())
	reconcileNow(t, ns, mc.Name)
	g.Expect(serverListOf(t, mc)(g)).To(Equal(stableNames(mc, 3)))

	// A scale-down shrinks the list first; the pods go once drained.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 2 })
	g.Eventually(serverListOf(t, mc)).Should(Equal(stableNames(mc, 2)))
	current := getMemcached(t, g, mc)
	g.Expect(current.Status.DrainingSince).NotTo(BeNil())
	g.Expect(meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionProgressing).Reason).
		To(Equal(status.ReasonScalingDown))
	g.Expect(ptr.Deref(statefulSetOf(t, mc).Spec.Replicas, 0)).To(Equal(int32(3)), "the pod went before it drained")

	// A second before the drain ends, a reconcile keeps the pod, and asks to
	// come back when it ends; at its end, the pod goes.
	drainEnds := current.Status.DrainingSince.Add(time.Hour)
	testClock.Step(drainEnds.Add(-time.Second).Sub(testClock.Now()))
	result, err := reconciler.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(mc)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(result.RequeueAfter).To(And(BeNumerically(">", 0), BeNumerically("<=", time.Second)))
	g.Expect(ptr.Deref(statefulSetOf(t, mc).Spec.Replicas, 0)).To(Equal(int32(3)), "the pod went before it drained")
	testClock.Step(time.Second)
	_, err = reconciler.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(mc)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ptr.Deref(statefulSetOf(t, mc).Spec.Replicas, 0)).To(Equal(int32(2)), "the pod stayed after it drained")
	g.Eventually(func(g Gomega) *metav1.Time { return getMemcached(t, g, mc).Status.DrainingSince }).Should(BeNil())
}

func TestSwitchingWorkloadsKeepsPodsServing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	deployment := deploymentOf(t, mc)
	setPodReady(t, createPod(t, mc, "cache-7d-a"), "10.1.0.1")
	setPodReady(t, createPod(t, mc, "cache-7d-b"), "10.1.0.2")
	g.Eventually(serverListOf(t, mc)).Should(Equal([]string{"10.1.0.1:11211", "10.1.0.2:11211"}))

	// The StatefulSet starts beside the Deployment, which stays until the
	// StatefulSet is ready; the list stays the Deployment's meanwhile.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Workload = cachev1alpha1.WorkloadStatefulSet })
	statefulSetOf(t, mc)
	createStatefulPods(t, mc, 2)
	// Once the operator has seen the StatefulSet's pods, and after one more
	// reconcile.
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.Nodes).To(ContainElements("cache-0", "cache-1"))
		g.Expect(meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionProgressing).Reason).
			To(Equal(status.ReasonSwitchingWorkload))
		g.Expect(current.Status.ServerList).To(Equal([]string{"10.1.0.1:11211", "10.1.0.2:11211"}))
	}).Should(Succeed())
	reconcileNow(t, ns, mc.Name)
	g.Expect(serverListOf(t, mc)(g)).To(Equal([]string{"10.1.0.1:11211", "10.1.0.2:11211"}))
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(deployment), &appsv1.Deployment{})).To(Succeed())

	// Ready: the list changes at once, and the Deployment goes.
	setStatefulSetReady(t, mc)
	g.Eventually(serverListOf(t, mc)).Should(Equal(stableNames(mc, 2)))
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(deployment), &appsv1.Deployment{}))
	}).Should(BeTrue())
}

func TestWarmRestartRecreatesTheStatefulSetLeavingItsPods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "warm"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1, Workload: cachev1alpha1.WorkloadStatefulSet}}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	before := statefulSetOf(t, mc)

	// The volume claims of a StatefulSet cannot change: the operator
	// deletes it, orphaning its pods, and creates it anew.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true} })
	orphanedByTheGarbageCollector(t, mc)
	g.Eventually(func(g Gomega) {
		current := &appsv1.StatefulSet{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(current.UID).NotTo(Equal(before.UID))
		g.Expect(current.Spec.VolumeClaimTemplates).To(HaveLen(1))
	}).Should(Succeed())
	converged(t, mc)
}

// A StatefulSet recreated with a claim template adopts pods that lack its
// volume, which its controller cannot add: the operator deletes them, one at
// a time, the lowest ordinal first, each once every pod runs and is ready.
func TestPodsWithoutTheClaimVolumeAreReplacedOneAtATime(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "warm"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 3, Workload: cachev1alpha1.WorkloadStatefulSet,
			WarmRestart: &cachev1alpha1.WarmRestartSpec{Enabled: true}}}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	// The pods the StatefulSet adopted, from before it had the template.
	createStatefulPods(t, mc, 3)
	exists := func(name string) func() bool {
		return func() bool {
			return !apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &corev1.Pod{}))
		}
	}
	g.Eventually(exists("warm-0")).Should(BeFalse(), "the first pod without its volume was not replaced")
	g.Expect(exists("warm-1")()).To(BeTrue())
	g.Expect(exists("warm-2")()).To(BeTrue())

	// Not the next one until the replacement runs, ready, with its volume.
	reconcileNow(t, ns, mc.Name)
	g.Expect(exists("warm-1")()).To(BeTrue(), "a second pod went while the first was missing")
	set := statefulSetOf(t, mc)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "warm-0", Labels: resources.Labels(mc),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: set.Name,
				UID: set.UID, Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "memcached", Image: resources.DefaultImage}},
			Volumes: []corev1.Volume{{Name: resources.MemoryFileClaim, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: resources.MemoryFileClaim + "-warm-0"}}}}},
	}
	g.Expect(k8sClient.Create(t.Context(), pod)).To(Succeed())
	setPodReady(t, pod, "10.2.0.10")
	g.Eventually(exists("warm-1")).Should(BeFalse(), "the next pod without its volume was not replaced")
	g.Expect(exists("warm-2")()).To(BeTrue())
}
