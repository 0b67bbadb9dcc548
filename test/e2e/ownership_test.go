package e2e

import (
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

func TestAnObjectOfSomeoneElseOutlivesTheMemcached(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	theirs := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache-headless"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}, Selector: map[string]string{"app": "web"}}}
	g.Expect(k8sClient.Create(t.Context(), theirs)).To(Succeed())

	mc := createMemcached(t, ns, 2)
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(status.ReasonOwnershipConflict))
		g.Expect(c.Message).To(ContainSubstring("Service cache-headless exists and is not managed by this Memcached"))
	}).Should(Succeed())
	before := &corev1.Service{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(theirs), before)).To(Succeed())
	g.Expect(before.OwnerReferences).To(BeEmpty())

	// Deleting the Memcached garbage-collects what it owns, not theirs: once
	// the garbage collector has deleted every object the Memcached owned and
	// the operator has reconciled its deletion, theirs is as it was.
	reconciled := reconciles(t, g)
	g.Expect(k8sClient.Delete(t.Context(), mc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), &cachev1alpha1.Memcached{}))).To(BeTrue())
		ofMemcached := client.MatchingLabels{resources.InstanceLabel: mc.Name}
		pods := resources.Kind{GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Pod")}
		for _, kind := range slices.Concat(resources.Kinds, []resources.Kind{pods}) {
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(kind.GroupVersion().WithKind(kind.Kind + "List"))
			err := k8sClient.List(t.Context(), list, client.InNamespace(ns), ofMemcached)
			if meta.IsNoMatchError(err) {
				continue
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list.Items).To(BeEmpty(), "the garbage collector has not deleted every %s", kind.Kind)
		}
	}).Should(Succeed())
	expectOperatorIdle(t, reconciled+1)
	after := &corev1.Service{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(theirs), after)).To(Succeed())
	g.Expect(after.ResourceVersion).To(Equal(before.ResourceVersion), "their Service was changed")
}
