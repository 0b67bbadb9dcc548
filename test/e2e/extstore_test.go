package e2e

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// TestExtstoreGivesEachPodAVolume: with extstore, each pod of the
// StatefulSet gets a bound volume claim of the size asked for; a scale-down
// deletes the claim of the pod it removes; turning extstore off gives a
// StatefulSet without it; and the documented way to change the size, with
// no pod running, gives the pods claims of the new size.
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
	g.Expect(pod.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]).To(Equal(resource.MustParse("294Mi")))

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

	// The size cannot change while extstore is on, and running pods cannot
	// gain a volume: with no pod, extstore is turned on with the new size,
	// and the pods started again get claims of that size, under a new name
	// that no claim left from the old size has.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 0 })
	expectConverged(t, mc, 0)
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Enabled = true; s.Extstore.Size = "20Gi" })
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 2 })
	expectConverged(t, mc, 2)
	g.Eventually(claims).Should(And(
		HaveKeyWithValue("extstore-20gi-flash-0", "20Gi"), HaveKeyWithValue("extstore-20gi-flash-1", "20Gi")))
	t.Logf("Claims once extstore is on again with 20Gi: %v", claims(g))
}
