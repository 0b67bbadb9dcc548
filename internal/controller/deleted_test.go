package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
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

// As its pods go, the Deployment controller updates the workload's status,
// so its resourceVersion may change between the operator's read and its
// delete. The workload still goes.
func TestTheWorkloadGoesWhileItsStatusChanges(t *testing.T) {
	g := NewWithT(t)
	namespace := newNamespace(t)
	// No label makes it the operator's, so the manager's cache and its
	// reconciler ignore it: only the reconciler below acts on it.
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "cache", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: cachev1alpha1.GroupVersion.String(), Kind: "Memcached", Name: "cache",
			UID: "d0d9ba3c-6a7e-4e1c-9f1b-0c1c5c0f5a11", Controller: ptr.To(true),
		}}},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "cache"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "memcached", Image: "memcached"}}},
			},
		},
	}
	g.Expect(k8sClient.Create(t.Context(), deployment)).To(Succeed())

	r := &MemcachedReconciler{Client: k8sClient, APIReader: &statusChangeAfterRead{Reader: k8sClient, t: t, deployment: deployment}}
	key := client.ObjectKeyFromObject(deployment)
	g.Expect(r.deleteWorkloadOfDeleted(t.Context(), key)).To(Succeed())
	g.Expect(k8sClient.Get(t.Context(), key, &appsv1.Deployment{})).To(Satisfy(apierrors.IsNotFound),
		"the Deployment of a deleted Memcached stayed because its status changed")
}

// statusChangeAfterRead updates the status of deployment once the reader has
// read it, as the Deployment controller would.
type statusChangeAfterRead struct {
	client.Reader
	t          *testing.T
	deployment *appsv1.Deployment
	changed    bool
}

func (r *statusChangeAfterRead) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := r.Reader.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	if obj.GetUID() == r.deployment.UID && !r.changed {
		r.changed = true
		patch := client.RawPatch(types.MergePatchType, []byte(`{"status":{"replicas":1}}`))
		if err := k8sClient.Status().Patch(ctx, r.deployment.DeepCopy(), patch); err != nil {
			r.t.Fatalf("Failed to update the Deployment's status: %v", err)
		}
	}
	return nil
}
