package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	cacheac "example.com/memcached-operator/api/v1alpha1/applyconfiguration/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// readyMemcached creates a Memcached of two ready pods and waits until its
// status says so.
func readyMemcached(t *testing.T, ns string) *cachev1alpha1.Memcached {
	t.Helper()
	mc := createMemcached(t, ns, "cache", 2)
	setPodReady(t, createPod(t, mc, "cache-a"), "10.1.0.1")
	setPodReady(t, createPod(t, mc, "cache-b"), "10.1.0.2")
	// Converged: envtest runs no Deployment controller, so the Deployment
	// reports no replicas for good.
	NewWithT(t).Eventually(func(g Gomega) {
		s := converged(t, mc).Status
		g.Expect(s.ServerList).To(HaveLen(2))
		g.Expect(meta.IsStatusConditionTrue(s.Conditions, cachev1alpha1.ConditionAvailable)).To(BeTrue())
	}).Should(Succeed())
	return mc
}

func TestSteadyStateSendsNothing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := readyMemcached(t, ns)

	writes := func() []string { return requests.writesIn(ns) }
	expectIdle(t)
	settled := writes()
	t.Logf("Writes to converge a new Memcached of 2 pods: %d %v", len(settled), settled)

	// A reconcile that finds nothing to do sends no request at all: it reads
	// only from the cache. Nothing follows it either: once the operator is
	// idle again, no write was added.
	expectNoOpReconcile(t, mc)
	expectIdle(t)
	g.Expect(writes()).To(Equal(settled))
}

func TestChangesOfOtherWritersCostNothing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := readyMemcached(t, ns)
	expectNoOpReconcile(t, mc)
	d := deploymentOf(t, mc)

	// A policy engine injects a sidecar, a volume, a toleration and an
	// annotation with server-side apply, and a user adds a label by hand.
	injected := appsv1ac.Deployment(d.Name, d.Namespace).
		WithAnnotations(map[string]string{"policy.example.com/checked": "true"}).
		WithSpec(appsv1ac.DeploymentSpec().WithTemplate(corev1ac.PodTemplateSpec().
			WithAnnotations(map[string]string{"sidecar.example.com/injected": "true"}).
			WithSpec(corev1ac.PodSpec().
				WithContainers(corev1ac.Container().WithName("proxy").WithImage("envoy:1").
					WithVolumeMounts(corev1ac.VolumeMount().WithName("proxy-config").WithMountPath("/etc/proxy"))).
				WithVolumes(corev1ac.Volume().WithName("proxy-config").WithEmptyDir(corev1ac.EmptyDirVolumeSource())).
				WithTolerations(corev1ac.Toleration().WithKey("dedicated").WithOperator(corev1.TolerationOpExists)))))
	before := len(requests.writesIn(ns))
	g.Expect(k8sClient.Apply(t.Context(), injected, client.FieldOwner("policy-engine"), client.ForceOwnership)).To(Succeed())
	labelled := deploymentOf(t, mc)
	patch := client.MergeFrom(labelled.DeepCopy())
	labelled.Labels["team"] = "payments"
	g.Expect(k8sClient.Patch(t.Context(), labelled, patch, client.FieldOwner("kubectl-label"))).To(Succeed())

	// The operator sees the change and finds that what it applied is all
	// there: it sends nothing, and tells of no change. Once its cache holds
	// the change, a reconcile sends nothing, and once the reconciles the
	// change asked for are done, nothing was sent since the change.
	g.Eventually(func(g Gomega) string {
		cached := &appsv1.Deployment{}
		g.Expect(reconciler.Get(t.Context(), client.ObjectKeyFromObject(d), cached)).To(Succeed())
		return cached.ResourceVersion
	}).Should(Equal(deploymentOf(t, mc).ResourceVersion))
	expectNoOpReconcile(t, mc)
	expectIdle(t)
	g.Expect(requests.writesIn(ns)[before:]).To(BeEmpty())
	g.Expect(eventReasons(t, mc)(g)).NotTo(ContainElements("DriftCorrected", "ConfigChanged"))
	current := deploymentOf(t, mc)
	g.Expect(current.Spec.Template.Spec.Containers).To(HaveLen(2))
	g.Expect(current.Labels).To(HaveKeyWithValue("team", "payments"))
}

func TestChangesOfOperatorFieldsArePutBack(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := readyMemcached(t, ns)
	d := deploymentOf(t, mc)
	want := d.Spec.Template.Spec.Containers[0].DeepCopy()

	// Another applier takes the image, forcing its way.
	edit := appsv1ac.Deployment(d.Name, d.Namespace).
		WithSpec(appsv1ac.DeploymentSpec().WithTemplate(corev1ac.PodTemplateSpec().
			WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName(resources.ContainerName).WithImage("evil:1")))))
	g.Expect(k8sClient.Apply(t.Context(), edit, client.FieldOwner("other-applier"), client.ForceOwnership)).To(Succeed())

	g.Eventually(func(g Gomega) {
		current := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(d), current)).To(Succeed())
		g.Expect(current.Spec.Template.Spec.Containers[0].Image).To(Equal(want.Image))
	}).Should(Succeed())
	g.Eventually(eventReasons(t, mc)).Should(ContainElement("DriftCorrected"))
	expectNoOpReconcile(t, mc)
}

func TestProgressingDoesNotFlipDuringASurge(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := readyMemcached(t, ns)

	// A template change: the old pods stay while a new one is added.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Threads = 2 })
	hash := func() string {
		return deploymentOf(t, mc).Annotations[resources.TemplateHashAnnotation]
	}
	var current string
	g.Eventually(func(g Gomega) { current = hash(); g.Expect(current).NotTo(BeEmpty()) }).Should(Succeed())
	surge := createPod(t, mc, "cache-c")
	surge.Annotations = map[string]string{resources.TemplateHashAnnotation: current}
	g.Expect(k8sClient.Update(t.Context(), surge)).To(Succeed())
	setPodReady(t, surge, "10.1.0.3")

	reason := func(g Gomega) string {
		return meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionProgressing).Reason
	}
	// Once the operator has seen the surge pod ready, three pods for a size
	// of two is a surge, not a scale-down: in the status it wrote then, and
	// after one more reconcile.
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.ReadyReplicas).To(Equal(int32(3)))
		g.Expect(meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionProgressing).Reason).
			To(Equal(status.ReasonRollingOut))
	}).Should(Succeed())
	_, err := reconciler.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(mc)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reason(g)).To(Equal(status.ReasonRollingOut))
}

func TestConditionsOfOtherWritersStayTheirs(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := readyMemcached(t, ns)

	// Another controller reports a condition of its own on the Memcached.
	theirs := cacheac.Memcached(mc.Name, ns).WithStatus(cacheac.MemcachedStatus().WithConditions(
		metav1ac.Condition().WithType("BackedUp").WithStatus(metav1.ConditionTrue).WithReason("SnapshotTaken").
			WithMessage("A snapshot was taken").WithLastTransitionTime(metav1.Now())))
	g.Expect(k8sClient.Status().Apply(t.Context(), theirs, client.FieldOwner("backup-controller"))).To(Succeed())

	// The operator's next status writes leave it alone.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 3 })
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		g.Expect(meta.FindStatusCondition(current.Status.Conditions, "BackedUp")).NotTo(BeNil())
		for _, f := range current.ManagedFields {
			if f.Manager == resources.ManagerName && f.Subresource == "status" {
				g.Expect(f.FieldsV1.GetRawString()).NotTo(ContainSubstring("BackedUp"), "the operator took the condition")
			}
		}
	}).Should(Succeed())
}
