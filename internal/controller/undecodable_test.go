package controller

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/status"
)

// limitsSchema is where, in a version of the CRD, the schema of
// spec.resources.limits is.
var limitsSchema = []string{"schema", "openAPIV3Schema", "properties", "spec", "properties", "resources", "properties", "limits"}

// limitsOf returns the schema of spec.resources.limits in crd.
func limitsOf(g Gomega, crd *unstructured.Unstructured) map[string]any {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	g.Expect(versions).To(HaveLen(1))
	limits, _, _ := unstructured.NestedMap(versions[0].(map[string]any), limitsSchema...)
	g.Expect(limits).NotTo(BeNil())
	return limits
}

// storeUndecodable stores, in namespace, a Memcached whose memory limit Go
// cannot decode, as a CRD that did not refuse it once let it be stored: the
// test takes the rules off spec.resources.limits for as long as the create
// takes, then puts them back.
func storeUndecodable(t *testing.T, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	g := NewWithT(t)
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	key := types.NamespacedName{Name: "memcacheds.cache.example.com"}
	// Cleanups run once t.Context() is done.
	ctx := context.Background()
	setRules := func(rules []any) {
		g.Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, crd)).To(Succeed())
			limits := limitsOf(g, crd)
			if rules == nil {
				delete(limits, "x-kubernetes-validations")
			} else {
				limits["x-kubernetes-validations"] = rules
			}
			versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
			g.Expect(unstructured.SetNestedMap(versions[0].(map[string]any), limits, limitsSchema...)).To(Succeed())
			g.Expect(unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions")).To(Succeed())
			g.Expect(k8sClient.Update(ctx, crd)).To(Succeed())
		}).Should(Succeed())
	}
	g.Expect(k8sClient.Get(t.Context(), key, crd)).To(Succeed())
	rules, _ := limitsOf(g, crd)["x-kubernetes-validations"].([]any)
	g.Expect(rules).NotTo(BeEmpty(), "the CRD has no rules for spec.resources.limits")

	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": cachev1alpha1.GroupVersion.String(), "kind": "Memcached",
		"metadata": map[string]any{"namespace": namespace, "name": name},
		"spec":     map[string]any{"size": int64(2), "resources": map[string]any{"limits": map[string]any{"memory": "1e1.5"}}},
	}}
	setRules(nil)
	t.Cleanup(func() { setRules(rules) })
	// The API server takes the new schema a moment after the update.
	g.Eventually(func() error { return k8sClient.Create(t.Context(), obj.DeepCopy()) }).Should(Succeed())
	setRules(rules)
	g.Eventually(func() bool {
		again := obj.DeepCopy()
		again.SetName(name + "-again")
		return apierrors.IsInvalid(k8sClient.Create(t.Context(), again, client.DryRunAll))
	}).Should(BeTrue(), "the API server does not refuse the value again")
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, obj) })
	return obj
}

// TestAMemcachedThatDoesNotDecodeStopsNoOther stores a Memcached that Go
// cannot decode, as one stored before the CRD refused its value would be:
// every other Memcached still converges, before and after the operator
// restarts, and the Memcached reports what is wrong with it itself.
func TestAMemcachedThatDoesNotDecodeStopsNoOther(t *testing.T) {
	g := NewWithT(t)
	badNS, goodNS := newNamespace(t), newNamespace(t)
	bad := storeUndecodable(t, badNS, "stored-before")
	key := client.ObjectKeyFromObject(bad)

	// Every other Memcached converges, in its namespace or another.
	converged(t, createMemcached(t, goodNS, "neighbour", 1))
	converged(t, createMemcached(t, badNS, "same-namespace", 1))

	// The Memcached says itself what is wrong with it.
	g.Eventually(func(g Gomega) {
		u := newMemcached()
		g.Expect(k8sClient.Get(t.Context(), key, u)).To(Succeed())
		conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		var degraded map[string]any
		for _, c := range conditions {
			if c := c.(map[string]any); c["type"] == cachev1alpha1.ConditionDegraded {
				degraded = c
			}
		}
		g.Expect(degraded).To(HaveKeyWithValue("status", string(metav1.ConditionTrue)))
		g.Expect(degraded).To(HaveKeyWithValue("reason", status.ReasonInvalidSpec))
		g.Expect(degraded["message"]).To(ContainSubstring("spec.resources.limits.memory"))
		g.Expect(degraded).To(HaveKeyWithValue("observedGeneration", u.GetGeneration()))
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		events := &eventsv1.EventList{}
		g.Expect(k8sClient.List(t.Context(), events, client.InNamespace(badNS))).To(Succeed())
		var reasons []string
		for _, e := range events.Items {
			if e.Regarding.Name == bad.GetName() && e.Type == "Warning" {
				reasons = append(reasons, e.Reason)
			}
		}
		g.Expect(reasons).To(ContainElement(status.ReasonInvalidSpec))
	}).Should(Succeed())
	// Its gauges say so too, so that an alert on them fires.
	g.Eventually(func(g Gomega) map[string]float64 {
		return gauges(g, "memcached_operator_memcached_condition", badNS, bad.GetName())
	}).Should(HaveKeyWithValue(cachev1alpha1.ConditionDegraded+"/True", 1.0))
	// Reconciling it again, once its status is written, sends nothing.
	g.Eventually(func(g Gomega) {
		g.Expect(requests.during(badNS, func() {
			_, err := reconciler.Reconcile(t.Context(), reconcile.Request{NamespacedName: key})
			g.Expect(errors.Is(err, reconcile.TerminalError(nil))).To(BeTrue(), "%v", err)
		})).To(BeEmpty())
	}).Should(Succeed())

	// An operator that starts now syncs its cache all the same, reconciles
	// the others, and reports this one.
	mgr, restarted, err := newOperator(t.Context(), testConfig, optionalAPIs)
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = mgr.GetCache().Start(t.Context()) }()
	g.Eventually(func() bool { return mgr.GetCache().WaitForCacheSync(t.Context()) }).Should(BeTrue())
	_, err = restarted.Reconcile(t.Context(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: goodNS, Name: "neighbour"}})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = restarted.Reconcile(t.Context(), reconcile.Request{NamespacedName: key})
	g.Expect(errors.Is(err, reconcile.TerminalError(nil))).To(BeTrue(), "%v", err)
}
