package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

func TestPodDisruptionBudgetFollowsSize(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 3)
	key := client.ObjectKeyFromObject(mc)
	pdb := func(g Gomega) *policyv1.PodDisruptionBudget {
		current := &policyv1.PodDisruptionBudget{}
		g.Expect(k8sClient.Get(t.Context(), key, current)).To(Succeed())
		g.Expect(metav1.IsControlledBy(current, mc)).To(BeTrue())
		g.Expect(current.Spec.Selector.MatchLabels).To(Equal(resources.SelectorLabels(mc)))
		g.Expect(current.Spec.UnhealthyPodEvictionPolicy).To(Equal(ptr.To(policyv1.AlwaysAllow)))
		return current
	}
	g.Eventually(func(g Gomega) *intstr.IntOrString { return pdb(g).Spec.MaxUnavailable }).
		Should(Equal(ptr.To(intstr.FromInt32(1))))

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.PodDisruptionBudget = &cachev1alpha1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromString("50%"))}
	})
	g.Eventually(func(g Gomega) *intstr.IntOrString { return pdb(g).Spec.MinAvailable }).
		Should(Equal(ptr.To(intstr.FromString("50%"))))
	g.Expect(pdb(g).Spec.MaxUnavailable).To(BeNil(), "maxUnavailable was left next to minAvailable")

	// One pod has nothing to budget: the budget goes, and comes back with size.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 1 })
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), key, &policyv1.PodDisruptionBudget{}))
	}).Should(BeTrue())
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 2 })
	g.Eventually(func(g Gomega) *intstr.IntOrString { return pdb(g).Spec.MinAvailable }).ShouldNot(BeNil())
}

func TestNetworkPolicyIsOptional(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	key := client.ObjectKeyFromObject(mc)
	g.Expect(apierrors.IsNotFound(k8sClient.Get(t.Context(), key, &networkingv1.NetworkPolicy{}))).To(BeTrue())

	web := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.NetworkPolicy = &cachev1alpha1.NetworkPolicySpec{AllowedFrom: []networkingv1.NetworkPolicyPeer{web}}
	})
	g.Eventually(func(g Gomega) {
		np := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(t.Context(), key, np)).To(Succeed())
		g.Expect(metav1.IsControlledBy(np, mc)).To(BeTrue())
		g.Expect(np.Spec.Ingress).To(HaveLen(1))
		g.Expect(np.Spec.Ingress[0].Ports[0].Port.IntValue()).To(Equal(11211))
		g.Expect(np.Spec.Ingress[0].From).To(ContainElement(web))
	}).Should(Succeed())

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.NetworkPolicy = nil })
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), key, &networkingv1.NetworkPolicy{}))
	}).Should(BeTrue())
}
