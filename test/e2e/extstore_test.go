package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// TestExtstoreGivesEachPodAVolume: with extstore, each pod of the
// StatefulSet gets a bound volume claim of the size asked for; a scale-down
// deletes the claim of the pod it removes; turning extstore off gives a
// StatefulSet without it; and the documented way to change the size without
// volume expansion, with no pod running, gives the pods claims of the new
// size.
func TestExtstoreGivesEachPodAVolume(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, restricted)
	mc := createStatefulMemcached(t, ns, "flash", 3, func(s *cachev1alpha1.MemcachedSpec) {
		s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "10Gi"}
	})
	expectConverged(t, mc, 3)
	// claims returns the bound claims that are not being deleted, by name,
	// with their requested size.
	claims := func(g Gomega) map[string]string {
		list := &corev1.PersistentVolumeClaimList{}
		g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(ns))).To(Succeed())
		bound := map[string]string{}
		for _, c := range list.Items {
			if c.Status.Phase == corev1.ClaimBound && c.DeletionTimestamp == nil {
				size := c.Spec.Resources.Requests[corev1.ResourceStorage]
				bound[c.Name] = size.String()
			}
		}
		return bound
	}
	g.Eventually(claims).Should(Equal(map[string]string{
		"extstore-10gi-flash-0": "10Gi", "extstore-10gi-flash-1": "10Gi", "extstore-10gi-flash-2": "10Gi"}))
	pod := &corev1.Pod{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "flash-0"}, pod)).To(Succeed())
	g.Expect(pod.Spec.Volumes).To(ContainElement(HaveField("Name", "extstore-10gi")))
	g.Expect(pod.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]).To(Equal(resource.MustParse("326Mi")))

	// A scale-down deletes the volume of the pod it removes.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 2; s.ScaleDownDrainSeconds = ptr.To[int32](0) })
	expectConverged(t, mc, 2)
	g.Eventually(claims).Should(Equal(map[string]string{"extstore-10gi-flash-0": "10Gi", "extstore-10gi-flash-1": "10Gi"}))

	// Turning extstore off recreates the StatefulSet without the claim
	// template, leaving its pods, which are replaced without extstore.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Enabled = false })
	expectConverged(t, mc, 2)
	g.Eventually(func(g Gomega) {
		set := &appsv1.StatefulSet{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), set)).To(Succeed())
		g.Expect(set.Spec.VolumeClaimTemplates).To(BeEmpty())
		g.Expect(set.Spec.Template.Spec.Containers[0].Args).NotTo(ContainElement(ContainSubstring("ext_path")))
	}).Should(Succeed())
	t.Logf("Claims left once extstore is off: %v", claims(g))

	// The path without volume expansion (running pods cannot gain a
	// volume): with no pod, extstore is turned on with the new size, and
	// the pods started again get claims of that size, under a new name that
	// no claim left from the old size has.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 0 })
	expectConverged(t, mc, 0)
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Enabled = true; s.Extstore.Size = "20Gi" })
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 2 })
	expectConverged(t, mc, 2)
	g.Eventually(claims).Should(And(
		HaveKeyWithValue("extstore-20gi-flash-0", "20Gi"), HaveKeyWithValue("extstore-20gi-flash-1", "20Gi")))
	t.Logf("Claims once extstore is on again with 20Gi: %v", claims(g))
}

// TestExtstoreVolumesGrowInPlace: a larger extstore.size, on a StorageClass
// that allows volume expansion, grows each pod's claim in place; memcached
// keeps its file until every volume has grown (the test plays the storage's
// resizer, which the simulated cluster lacks); then the pods are replaced one
// at a time with the larger file on the same claims, which the new
// StatefulSet owns; nothing is written once it is done.
func TestExtstoreVolumesGrowInPlace(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, restricted)
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{GenerateName: "expandable-"},
		Provisioner: "kubernetes.io/host-path", AllowVolumeExpansion: ptr.To(true)}
	g.Expect(k8sClient.Create(t.Context(), class)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), class) })
	mc := createStatefulMemcached(t, ns, "flash", 3, func(s *cachev1alpha1.MemcachedSpec) {
		s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "10Gi", StorageClassName: ptr.To(class.Name)}
	})
	expectConverged(t, mc, 3)
	names := []string{"extstore-10gi-flash-0", "extstore-10gi-flash-1", "extstore-10gi-flash-2"}
	// claims returns the claims of the namespace by name, as
	// "<request>/<capacity>".
	claims := func(g Gomega) map[string]string {
		list := &corev1.PersistentVolumeClaimList{}
		g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(ns))).To(Succeed())
		sizes := map[string]string{}
		for _, c := range list.Items {
			request, capacity := c.Spec.Resources.Requests[corev1.ResourceStorage], c.Status.Capacity[corev1.ResourceStorage]
			sizes[c.Name] = request.String() + "/" + capacity.String()
		}
		return sizes
	}
	g.Eventually(claims).Should(Equal(map[string]string{names[0]: "10Gi/10Gi", names[1]: "10Gi/10Gi", names[2]: "10Gi/10Gi"}))
	// Each pod available (ready for minReadySeconds): the StatefulSet
	// controller replaces pods that are not at once.
	before := &appsv1.StatefulSet{}
	g.Eventually(func(g Gomega) int32 {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), before)).To(Succeed())
		return before.Status.AvailableReplicas
	}, time.Minute).Should(Equal(int32(3)))
	pods := watchPods(t, mc)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "20Gi" })
	g.Eventually(claims).Should(Equal(map[string]string{names[0]: "20Gi/10Gi", names[1]: "20Gi/10Gi", names[2]: "20Gi/10Gi"}))
	g.Eventually(func(g Gomega) string {
		c := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionProgressing)
		g.Expect(c).NotTo(BeNil())
		return c.Reason + ": " + c.Message
	}).Should(Equal("ExpandingVolumes: Expanding the extstore volumes from 10240Mi to 20480Mi: 0/3 have grown"))
	current := &appsv1.StatefulSet{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
	g.Expect(current.UID).To(Equal(before.UID), "the StatefulSet changed before the volumes grew")
	g.Expect(current.Spec.Template.Spec.Containers[0].Args).To(ContainElement(ContainSubstring("ext_path=/var/lib/memcached-extstore/extstore:9216m,")))

	// The resizer: each volume, then its claim, gets the size asked for.
	for _, name := range names {
		claim := &corev1.PersistentVolumeClaim{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, claim)).To(Succeed())
		volume := &corev1.PersistentVolume{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Name: claim.Spec.VolumeName}, volume)).To(Succeed())
		volume.Spec.Capacity[corev1.ResourceStorage] = resource.MustParse("20Gi")
		g.Expect(k8sClient.Update(t.Context(), volume)).To(Succeed())
		claim.Status.Capacity[corev1.ResourceStorage] = resource.MustParse("20Gi")
		g.Expect(k8sClient.Status().Update(t.Context(), claim)).To(Succeed())
	}

	g.Eventually(func(g Gomega) {
		set := &appsv1.StatefulSet{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), set)).To(Succeed())
		g.Expect(set.UID).NotTo(Equal(before.UID))
		g.Expect(set.Spec.VolumeClaimTemplates).To(HaveLen(1))
		g.Expect(set.Spec.VolumeClaimTemplates[0].Name).To(Equal("extstore-10gi"))
		g.Expect(set.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]).To(Equal(resource.MustParse("20Gi")))
		for i := range 3 {
			pod := &corev1.Pod{}
			g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("flash-%d", i)}, pod)).To(Succeed())
			g.Expect(pod.Spec.Containers[0].Args).To(ContainElement(ContainSubstring("ext_path=/var/lib/memcached-extstore/extstore:18432m,")))
			g.Expect(pod.Spec.Volumes).To(ContainElement(HaveField("PersistentVolumeClaim.ClaimName", names[i])))
		}
	}).Should(Succeed())
	expectConverged(t, mc, 3)
	g.Expect(pods.fewest()).To(BeNumerically(">=", 2), "more than one pod was down at a time")
	// The same claims, grown, now the new StatefulSet's: deleted with it.
	g.Expect(claims(g)).To(Equal(map[string]string{names[0]: "20Gi/20Gi", names[1]: "20Gi/20Gi", names[2]: "20Gi/20Gi"}))
	set := &appsv1.StatefulSet{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), set)).To(Succeed())
	g.Eventually(func(g Gomega) {
		for _, name := range names {
			claim := &corev1.PersistentVolumeClaim{}
			g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, claim)).To(Succeed())
			g.Expect(claim.OwnerReferences).To(ContainElement(HaveField("UID", set.UID)))
		}
	}).Should(Succeed())

	// Nothing is written once it is done.
	reconcileNow(t, mc)
	after := &appsv1.StatefulSet{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), after)).To(Succeed())
	g.Expect(after.ResourceVersion).To(Equal(set.ResourceVersion))
	g.Expect(claims(g)).To(Equal(map[string]string{names[0]: "20Gi/20Gi", names[1]: "20Gi/20Gi", names[2]: "20Gi/20Gi"}))
}
