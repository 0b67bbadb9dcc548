package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// envtest runs no garbage collector: whatever goes here, the operator
// deleted.

func TestTheWorkloadOfADeletedMemcachedGoesAtOnce(t *testing.T) {
	for _, workload := range []client.Object{&appsv1.Deployment{}, &appsv1.StatefulSet{}} {
		kind := cachev1alpha1.WorkloadDeployment
		if _, ok := workload.(*appsv1.StatefulSet); ok {
			kind = cachev1alpha1.WorkloadStatefulSet
		}
		t.Run(string(kind), func(t *testing.T) {
			g := NewWithT(t)
			mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: newNamespace(t), Name: "cache"},
				Spec: cachev1alpha1.MemcachedSpec{Size: 1, Workload: kind}}
			g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
			key := client.ObjectKeyFromObject(mc)
			g.Eventually(func() error { return k8sClient.Get(t.Context(), key, workload) }).Should(Succeed())

			g.Expect(k8sClient.Delete(t.Context(), mc)).To(Succeed())
			g.Eventually(func() error { return k8sClient.Get(t.Context(), key, workload) }).Should(
				Satisfy(apierrors.IsNotFound), "the %s of a deleted Memcached stayed", kind)
			// The objects that own nothing are the garbage collector's.
			g.Expect(k8sClient.Get(t.Context(), key, &corev1.Service{})).To(Succeed())
		})
	}
}

func TestAWorkloadOrphanedWithItsMemcachedStays(t *testing.T) {
	g := NewWithT(t)
	mc := createMemcached(t, newNamespace(t), "cache", 1)
	converged(t, mc)
	deployment := deploymentOf(t, mc)

	// kubectl delete --cascade=orphan: the garbage collector removes the
	// owner reference from the Deployment, then the finalizer that held the
	// Memcached. envtest runs none, so the test does both.
	g.Expect(k8sClient.Delete(t.Context(), mc, client.PropagationPolicy(metav1.DeletePropagationOrphan))).To(Succeed())
	g.Expect(k8sClient.Patch(t.Context(), deployment, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"ownerReferences":null}}`)))).To(Succeed())
	g.Expect(k8sClient.Patch(t.Context(), mc, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"finalizers":null}}`)))).To(Succeed())
	g.Eventually(func() error { return k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), mc) }).Should(
		Satisfy(apierrors.IsNotFound))

	expectUnchanged(t, deployment)
}
