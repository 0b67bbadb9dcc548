package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// foreignObjects are objects a user made, with the names a Memcached
// "cache" asks for, and labels of their own.
func foreignObjects(ns string) map[string]client.Object {
	objectMeta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"owner": "someone-else"}}
	}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "theirs"}}
	port := []corev1.ServicePort{{Name: "http", Port: 80}}
	return map[string]client.Object{
		"Deployment cache": &appsv1.Deployment{ObjectMeta: objectMeta("cache"), Spec: appsv1.DeploymentSpec{Selector: selector,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: selector.MatchLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}}},
		"Service cache":          &corev1.Service{ObjectMeta: objectMeta("cache"), Spec: corev1.ServiceSpec{Ports: port}},
		"Service cache-headless": &corev1.Service{ObjectMeta: objectMeta("cache-headless"), Spec: corev1.ServiceSpec{Ports: port}},
		"ConfigMap cache-servers": &corev1.ConfigMap{ObjectMeta: objectMeta("cache-servers"),
			Data: map[string]string{"servers": "mine"}},
		"PodDisruptionBudget cache": &policyv1.PodDisruptionBudget{ObjectMeta: objectMeta("cache"),
			Spec: policyv1.PodDisruptionBudgetSpec{Selector: selector, MaxUnavailable: ptr.To(intstr.FromInt32(2))}},
		"NetworkPolicy cache": &networkingv1.NetworkPolicy{ObjectMeta: objectMeta("cache"),
			Spec: networkingv1.NetworkPolicySpec{PodSelector: *selector}},
	}
}

func TestObjectsOfOthersAreNeverTaken(t *testing.T) {
	for name, foreign := range foreignObjects("") {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			foreign.SetNamespace(ns)
			g.Expect(k8sClient.Create(t.Context(), foreign)).To(Succeed())
			before := foreign.DeepCopyObject().(client.Object)
			g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(foreign), before)).To(Succeed())

			mc := createMemcached(t, ns, "cache", 2)
			patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
				s.NetworkPolicy = &cachev1alpha1.NetworkPolicySpec{}
			})
			expectDegraded(t, mc, status.ReasonOwnershipConflict, name+" exists and is not managed by this Memcached")
			g.Eventually(eventReasons(t, mc)).Should(ContainElement(status.ReasonOwnershipConflict))
			// Byte for byte as it was: no owner reference, so garbage
			// collection never deletes it with the Memcached either.
			expectUnchanged(t, before)

			// Turning off what asked for it does not delete it either; the
			// conflict ends if nothing else asks for the name.
			patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.NetworkPolicy = nil; s.Size = 1 })
			if _, optional := foreign.(*networkingv1.NetworkPolicy); optional {
				converged(t, mc)
			} else if _, optional := foreign.(*policyv1.PodDisruptionBudget); optional {
				converged(t, mc)
			} else {
				expectDegraded(t, mc, status.ReasonOwnershipConflict, name)
			}
			expectUnchanged(t, before)
		})
	}
}

func TestTwoMemcachedsDoNotFightOverAService(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// foo's headless Service is named like foo-headless's Service.
	first := createMemcached(t, ns, "foo", 1)
	g.Eventually(func() error {
		return k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "foo-headless"}, &corev1.Service{})
	}).Should(Succeed())
	second := createMemcached(t, ns, "foo-headless", 1)
	expectDegraded(t, second, status.ReasonOwnershipConflict, "Service foo-headless exists and is controlled by Memcached foo")

	svc := &corev1.Service{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "foo-headless"}, svc)).To(Succeed())
	g.Expect(metav1.IsControlledBy(svc, first)).To(BeTrue())
	expectUnchanged(t, svc)
}

func TestObjectsOfTheOperatorLeftWithoutOwnerAreAdopted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)

	// A restore from a backup drops owner references.
	svc := &corev1.Service{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "cache"}, svc)).To(Succeed())
	patch := client.MergeFrom(svc.DeepCopy())
	svc.OwnerReferences = nil
	g.Expect(k8sClient.Patch(t.Context(), svc, patch)).To(Succeed())

	g.Eventually(func(g Gomega) {
		current := &corev1.Service{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(svc), current)).To(Succeed())
		g.Expect(metav1.IsControlledBy(current, mc)).To(BeTrue())
		g.Expect(current.UID).To(Equal(svc.UID))
	}).Should(Succeed())

	// Labels of the operator, but for another Memcached: not adopted.
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan-servers",
		Labels: resources.Labels(&cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Name: "someone"}})}}
	g.Expect(k8sClient.Create(t.Context(), other)).To(Succeed())
	orphan := createMemcached(t, ns, "orphan", 1)
	expectDegraded(t, orphan, status.ReasonOwnershipConflict, "ConfigMap orphan-servers exists and is not managed by this Memcached")
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(other), other)).To(Succeed())
	g.Expect(other.OwnerReferences).To(BeEmpty())

	// Once the user removes it, the Memcached gets its own.
	g.Expect(k8sClient.Delete(t.Context(), other)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cm := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(other), cm)).To(Succeed())
		g.Expect(metav1.IsControlledBy(cm, orphan)).To(BeTrue())
	}).Should(Succeed())
	converged(t, orphan)
	g.Expect(apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "nothing"}, &corev1.Service{}))).
		To(BeTrue())
}

func TestARecreatedMemcachedWaitsForTheObjectsOfItsPredecessor(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	old := createMemcached(t, ns, "cache", 1)
	converged(t, old)

	// Deleted and created again at once: envtest runs no garbage collector,
	// so the objects of the first stay, as they do for a while in a cluster.
	g.Expect(k8sClient.Delete(t.Context(), old)).To(Succeed())
	mc := createMemcached(t, ns, "cache", 1)
	g.Eventually(func(g Gomega) {
		s := getMemcached(t, g, mc).Status
		g.Expect(meta.IsStatusConditionFalse(s.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue(), "%+v", s.Conditions)
		progressing := meta.FindStatusCondition(s.Conditions, cachev1alpha1.ConditionProgressing)
		g.Expect(progressing).NotTo(BeNil())
		g.Expect(progressing.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(progressing.Message).To(ContainSubstring("a deleted Memcached of this name"), "the user is told what it waits for")
	}).Should(Succeed())
	g.Expect(eventReasons(t, mc)(g)).NotTo(ContainElement(status.ReasonOwnershipConflict))

	// The garbage collector deletes them (the operator may have deleted the
	// Deployment already): the new Memcached gets its own.
	for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{}} {
		g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(ns))).To(Succeed())
		g.Expect(meta.EachListItem(list, func(obj runtime.Object) error {
			if o := obj.(client.Object); metav1.IsControlledBy(o, old) {
				return client.IgnoreNotFound(k8sClient.Delete(t.Context(), o))
			}
			return nil
		})).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), d)).To(Succeed())
		g.Expect(metav1.IsControlledBy(d, mc)).To(BeTrue())
	}).Should(Succeed())
}
