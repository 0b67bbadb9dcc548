package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// TestExtstoreGivesEachPodAVolume: a Memcached with extstore gets a
// StatefulSet with a claim template of the size and class asked for, a
// container that mounts it where the rendered ext_path points, and a memory
// limit that counts the write buffers; a reconcile with nothing changed
// writes nothing.
func TestExtstoreGivesEachPodAVolume(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "flash"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 2, Workload: cachev1alpha1.WorkloadStatefulSet, MemoryMB: 1024, MaxItemSizeKB: 2048,
			Extstore: &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "100Gi", StorageClassName: ptr.To("local-nvme")}}}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())

	set := statefulSetOf(t, mc)
	g.Expect(set.Spec.VolumeClaimTemplates).To(HaveLen(1))
	claim := set.Spec.VolumeClaimTemplates[0]
	g.Expect(claim.Name).To(Equal("extstore-100gi"))
	g.Expect(claim.Spec.StorageClassName).To(Equal(ptr.To("local-nvme")))
	g.Expect(claim.Spec.Resources.Requests[corev1.ResourceStorage]).To(Equal(resource.MustParse("100Gi")))
	g.Expect(set.Spec.PersistentVolumeClaimRetentionPolicy).To(Equal(&appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}))

	container := set.Spec.Template.Spec.Containers[0]
	g.Expect(container.Args).To(ContainElement(
		"ext_path=" + memcached.ExtstoreDir + "/" + memcached.ExtstoreFile + ":92160m,ext_wbuf_size=32,ext_threads=10," +
			"ext_item_size=512,ext_max_sleep=10000,ext_recache_rate=0,slab_automove_freeratio=0.10"))
	g.Expect(container.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "extstore-100gi", MountPath: memcached.ExtstoreDir}))
	// 1024 + 10% + 32 + 6 write buffers of 32.
	g.Expect(container.Resources.Limits[corev1.ResourceMemory]).To(Equal(resource.MustParse("1350Mi")))

	converged(t, mc)
	expectNoOpReconcile(t, mc)
}

// TestExtstoreSizeCannotChangeWhileEnabled: the size and class of the
// volumes are refused while extstore is on; turned off first, they can
// change, and turning it on again makes claims of the new size, under a new
// name, so that no volume of the old size is mounted.
func TestExtstoreSizeCannotChangeWhileEnabled(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "flash"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1, Workload: cachev1alpha1.WorkloadStatefulSet,
			Extstore: &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "10Gi"}}}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())

	for _, change := range []func(*cachev1alpha1.ExtstoreSpec){
		func(e *cachev1alpha1.ExtstoreSpec) { e.Size = "20Gi" },
		func(e *cachev1alpha1.ExtstoreSpec) { e.StorageClassName = ptr.To("other") },
	} {
		current := getMemcached(t, g, mc)
		patch := client.MergeFrom(current.DeepCopy())
		change(current.Spec.Extstore)
		err := k8sClient.Patch(t.Context(), current, patch)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
		g.Expect(err.Error()).To(ContainSubstring("extstore.size and extstore.storageClassName cannot change while extstore is enabled"))
	}
	// Other settings may change: they restart the pods, whose files are
	// emptied anyway.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.IOThreads = 4 })

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Enabled = false })
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "20Gi" })
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Enabled = true })
	g.Expect(getMemcached(t, g, mc).Spec.Extstore.Size).To(Equal("20Gi"))
}
