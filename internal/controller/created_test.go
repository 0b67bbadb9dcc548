package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// operatorsEntries returns the operations of the operator's entries in the
// managed fields of obj, but its status.
func operatorsEntries(obj client.Object) []metav1.ManagedFieldsOperationType {
	var ops []metav1.ManagedFieldsOperationType
	for _, f := range obj.GetManagedFields() {
		if f.Manager == resources.ManagerName && f.Subresource == "" {
			ops = append(ops, f.Operation)
		}
	}
	return ops
}

func TestAFieldOfACreateGoesWhenTheSpecNoLongerAsksForIt(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache"},
		Spec:       cachev1alpha1.MemcachedSpec{Size: 1, NodeSelector: map[string]string{"disk": "ssd"}},
	}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())

	// The objects are created, not applied: the API server records the
	// create's fields as an Update of the operator.
	d := deploymentOf(t, mc)
	g.Expect(operatorsEntries(d)).To(Equal([]metav1.ManagedFieldsOperationType{metav1.ManagedFieldsOperationUpdate}))
	g.Expect(d.Spec.Template.Spec.NodeSelector).To(HaveKeyWithValue("disk", "ssd"))
	svc := &corev1.Service{}
	g.Eventually(func() error { return k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), svc) }).Should(Succeed())
	g.Expect(operatorsEntries(svc)).To(Equal([]metav1.ManagedFieldsOperationType{metav1.ManagedFieldsOperationUpdate}))

	// They hold what was asked: nothing more is sent.
	converged(t, mc)
	expectNoOpReconcile(t, mc)

	// A field the spec no longer asks for goes: the create's fields became
	// applied ones before the apply, which left none behind.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.NodeSelector = nil })
	g.Eventually(func(g Gomega) {
		current := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(current.Spec.Template.Spec.NodeSelector).To(BeEmpty())
		g.Expect(operatorsEntries(current)).To(Equal([]metav1.ManagedFieldsOperationType{metav1.ManagedFieldsOperationApply}))
		// What the API server defaulted on the create, which the apply
		// removed, it defaulted again.
		g.Expect(current.Spec.Template.Spec.RestartPolicy).To(Equal(corev1.RestartPolicyAlways))
		g.Expect(current.Spec.Template.Spec.Containers[0].TerminationMessagePath).To(Equal(corev1.TerminationMessagePathDefault))
	}).Should(Succeed())
	converged(t, mc)
	expectNoOpReconcile(t, mc)
}

func TestAFieldOfACreateTakenByAnotherWriterIsPutBack(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)

	// Another writer changes a label the operator's create set.
	svc := &corev1.Service{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), svc)).To(Succeed())
	g.Expect(operatorsEntries(svc)).To(Equal([]metav1.ManagedFieldsOperationType{metav1.ManagedFieldsOperationUpdate}))
	patch := client.MergeFrom(svc.DeepCopy())
	svc.Labels[resources.NameLabel] = "changed"
	g.Expect(k8sClient.Patch(t.Context(), svc, patch, client.FieldOwner("someone"))).To(Succeed())

	g.Eventually(func(g Gomega) {
		current := &corev1.Service{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(current.Labels).To(HaveKeyWithValue(resources.NameLabel, resources.AppName))
	}).Should(Succeed())
	expectNoOpReconcile(t, mc)
}

func TestTheServersConfigMapKeepsItsCreatedFieldsAsItsListChanges(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	servers := func(g Gomega) *corev1.ConfigMap {
		cm := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "cache-servers"}, cm)).To(Succeed())
		return cm
	}

	// Each change of the list is one apply: the fields of the ConfigMap's
	// create are all in it, and need not become applied ones first.
	setPodReady(t, createPod(t, mc, "cache-a"), "10.1.0.1")
	g.Eventually(func(g Gomega) {
		g.Expect(servers(g).Data).To(HaveKeyWithValue(resources.ServersCSVKey, "10.1.0.1:11211"))
	}).Should(Succeed())
	setPodReady(t, createPod(t, mc, "cache-b"), "10.1.0.2")
	g.Eventually(func(g Gomega) {
		cm := servers(g)
		g.Expect(cm.Data).To(HaveKeyWithValue(resources.ServersCSVKey, "10.1.0.1:11211,10.1.0.2:11211"))
		g.Expect(operatorsEntries(cm)).To(ConsistOf(metav1.ManagedFieldsOperationUpdate, metav1.ManagedFieldsOperationApply))
	}).Should(Succeed())
	expectNoOpReconcile(t, mc)
}

func TestTheReconcileThatCreatesLeavesTheStatusToTheNext(t *testing.T) {
	g := NewWithT(t)
	// An operator whose controller does not run: each reconcile is this
	// test's, as the suite's operator does not watch this namespace.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: byHandNamespace}}
	g.Expect(client.IgnoreAlreadyExists(k8sClient.Create(t.Context(), ns))).To(Succeed())
	mgr, r, err := newOperator(t.Context(), testConfig, optionalAPIs)
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = mgr.GetCache().Start(t.Context()) }()
	g.Expect(mgr.GetCache().WaitForCacheSync(t.Context())).To(BeTrue())

	mc := createMemcached(t, byHandNamespace, "created-"+rand.String(5), 2)
	key := client.ObjectKeyFromObject(mc)
	reconcileOnce := func() {
		t.Helper()
		g.Eventually(func() error { _, err := r.getMemcached(t.Context(), key); return err }).Should(Succeed())
		_, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: key})
		g.Expect(err).NotTo(HaveOccurred())
	}

	// The reconcile that creates the objects writes no status: their
	// events bring the next reconcile.
	reconcileOnce()
	g.Expect(k8sClient.Get(t.Context(), key, &appsv1.Deployment{})).To(Succeed())
	created := getMemcached(t, g, mc)
	g.Expect(created.ResourceVersion).To(Equal(mc.ResourceVersion), "the status was written")
	// Its gauges are set all the same.
	g.Expect(gauges(g, "memcached_operator_memcached_desired_servers", byHandNamespace, mc.Name)).To(Equal(map[string]float64{"": 2}))

	// By the next, the pods are there: one status write shows them.
	pods := []*corev1.Pod{createPod(t, mc, mc.Name+"-a"), createPod(t, mc, mc.Name+"-b")}
	g.Eventually(func(g Gomega) {
		list := &corev1.PodList{}
		g.Expect(r.List(t.Context(), list, client.InNamespace(byHandNamespace),
			client.MatchingLabels(resources.SelectorLabels(mc)))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(len(pods)))
	}).Should(Succeed())
	reconcileOnce()
	first := getMemcached(t, g, mc)
	g.Expect(first.Status.ObservedGeneration).To(Equal(first.Generation))
	g.Expect(first.Status.Nodes).To(ConsistOf(pods[0].Name, pods[1].Name))
	g.Expect(meta.FindStatusCondition(first.Status.Conditions, cachev1alpha1.ConditionProgressing)).NotTo(BeNil())
	g.Expect(first.ResourceVersion).NotTo(Equal(mc.ResourceVersion))

	// Then a reconcile that creates nothing and observes nothing new writes
	// nothing.
	reconcileOnce()
	g.Expect(getMemcached(t, g, mc).ResourceVersion).To(Equal(first.ResourceVersion))
}
