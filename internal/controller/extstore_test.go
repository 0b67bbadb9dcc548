package controller

import (
	"context"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
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
	// 1024 + 10% + 32 + 6 write buffers of 32 and compaction's read buffer.
	g.Expect(container.Resources.Limits[corev1.ResourceMemory]).To(Equal(resource.MustParse("1382Mi")))

	converged(t, mc)
	expectNoOpReconcile(t, mc)
}

// TestExtstoreClassCannotChangeNorSizeShrinkWhileEnabled: the class of
// the volumes cannot change while extstore is on, and their size cannot
// shrink; turned off first, both can, and turning it on again makes claims
// of the new size, under a new name, so that no volume of the old size is
// mounted.
func TestExtstoreClassCannotChangeNorSizeShrinkWhileEnabled(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "flash"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1, Workload: cachev1alpha1.WorkloadStatefulSet,
			Extstore: &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "10Gi"}}}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())

	for _, tt := range []struct {
		change func(*cachev1alpha1.ExtstoreSpec)
		want   string
	}{
		{func(e *cachev1alpha1.ExtstoreSpec) { e.StorageClassName = ptr.To("other") }, "extstore.storageClassName cannot change while extstore is enabled"},
		{func(e *cachev1alpha1.ExtstoreSpec) { e.Size = "9Gi" }, "extstore.size cannot shrink while extstore is enabled"},
		{func(e *cachev1alpha1.ExtstoreSpec) { e.Size = "10239Mi" }, "extstore.size cannot shrink while extstore is enabled"},
		{func(e *cachev1alpha1.ExtstoreSpec) { e.Size = "72Mi" }, "extstore.size cannot shrink while extstore is enabled"},
	} {
		current := getMemcached(t, g, mc)
		patch := client.MergeFrom(current.DeepCopy())
		tt.change(current.Spec.Extstore)
		err := k8sClient.Patch(t.Context(), current, patch)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
		g.Expect(err.Error()).To(ContainSubstring(tt.want))
	}
	// The same size in other units, and other settings, may change: the
	// latter restart the pods, whose files are emptied anyway.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "10240Mi"; s.Extstore.IOThreads = 4 })

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Enabled = false })
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Extstore.Size = "5Gi"
		s.Extstore.StorageClassName = ptr.To("other")
	})
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Enabled = true })
	g.Expect(getMemcached(t, g, mc).Spec.Extstore.Size).To(Equal("5Gi"))
}

// createStorageClass creates a StorageClass that allows volume expansion
// or not, deleted with the test.
func createStorageClass(t *testing.T, allowExpansion bool) string {
	t.Helper()
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{GenerateName: "extstore-"},
		Provisioner: "example.com/none", AllowVolumeExpansion: ptr.To(allowExpansion)}
	if err := k8sClient.Create(t.Context(), class); err != nil {
		t.Fatalf("Failed to create StorageClass: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), class) })
	return class.Name
}

// createExpandableMemcached creates a converged Memcached "flash" of two
// StatefulSet pods with extstore volumes of 10Gi, bound, on a StorageClass
// that allows volume expansion or not.
func createExpandableMemcached(t *testing.T, allowExpansion bool) *cachev1alpha1.Memcached {
	t.Helper()
	ns := newNamespace(t)
	class := createStorageClass(t, allowExpansion)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "flash"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 2, Workload: cachev1alpha1.WorkloadStatefulSet,
			Extstore: &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "10Gi", StorageClassName: ptr.To(class)}}}
	NewWithT(t).Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	createStatefulPodsWithClaims(t, mc, 2)
	setStatefulSetReady(t, mc)
	converged(t, mc)
	return mc
}

// createStatefulPodsWithClaims creates the first n pods of the StatefulSet
// of mc, ready, each with the volume of the claim template and its claim,
// bound to a volume of the claim template's size, as the StatefulSet
// controller, a provisioner and a kubelet would (envtest runs none).
func createStatefulPodsWithClaims(t *testing.T, mc *cachev1alpha1.Memcached, n int) {
	t.Helper()
	g := NewWithT(t)
	set := statefulSetOf(t, mc)
	g.Expect(set.Spec.VolumeClaimTemplates).To(HaveLen(1))
	template := set.Spec.VolumeClaimTemplates[0]
	for i := range n {
		name := fmt.Sprintf("%s-%d", mc.Name, i)
		claim := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: mc.Namespace, Name: template.Name + "-" + name, Labels: template.Labels},
			Spec:       template.Spec,
		}
		g.Expect(k8sClient.Create(t.Context(), claim)).To(Succeed())
		setClaimCapacity(t, claim, template.Spec.Resources.Requests[corev1.ResourceStorage])

		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: mc.Namespace, Name: name, Labels: resources.Labels(mc),
				Annotations: map[string]string{resources.TemplateHashAnnotation: set.Annotations[resources.TemplateHashAnnotation]},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: set.Name,
					UID: set.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "memcached", Image: resources.DefaultImage}},
				Volumes: []corev1.Volume{{Name: template.Name, VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim.Name}}}}},
		}
		g.Expect(k8sClient.Create(t.Context(), pod)).To(Succeed())
		setPodReady(t, pod, fmt.Sprintf("10.3.0.%d", i))
	}
}

// setClaimCapacity reports claim bound to a volume of capacity, with the
// conditions given, as the volume's controllers would.
func setClaimCapacity(t *testing.T, claim *corev1.PersistentVolumeClaim, capacity resource.Quantity,
	conditions ...corev1.PersistentVolumeClaimCondition) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		current := &corev1.PersistentVolumeClaim{}
		if err := k8sClient.Get(t.Context(), client.ObjectKeyFromObject(claim), current); err != nil {
			return err
		}
		current.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound,
			AccessModes: current.Spec.AccessModes, Capacity: corev1.ResourceList{corev1.ResourceStorage: capacity},
			Conditions: conditions}
		return k8sClient.Status().Update(t.Context(), current)
	}).Should(Succeed())
}

// requestedSizes returns the size each claim of the namespace asks for.
func requestedSizes(t *testing.T, ns string) func(Gomega) map[string]string {
	return func(g Gomega) map[string]string {
		list := &corev1.PersistentVolumeClaimList{}
		g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(ns))).To(Succeed())
		sizes := map[string]string{}
		for _, c := range list.Items {
			size := c.Spec.Resources.Requests[corev1.ResourceStorage]
			sizes[c.Name] = size.String()
		}
		return sizes
	}
}

// progressingOf returns the reason and message of the Progressing condition
// of mc.
func progressingOf(t *testing.T, mc *cachev1alpha1.Memcached) func(Gomega) string {
	return func(g Gomega) string {
		c := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionProgressing)
		g.Expect(c).NotTo(BeNil())
		return c.Reason + ": " + c.Message
	}
}

// TestExtstoreVolumesGrowInPlace: a larger extstore.size asks each bound
// claim to grow where the StorageClass allows it; the StatefulSet and
// memcached's file keep the old size until every claim has the new
// capacity and its filesystem has grown; then the StatefulSet is recreated,
// its claim template keeping its name with the new size, and memcached
// gets the larger file on the same volumes.
func TestExtstoreVolumesGrowInPlace(t *testing.T) {
	g := NewWithT(t)
	mc := createExpandableMemcached(t, true)
	ns := mc.Namespace
	before := statefulSetOf(t, mc)
	twenty := resource.MustParse("20Gi")

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "20Gi" })
	g.Eventually(requestedSizes(t, ns)).Should(Equal(map[string]string{"extstore-10gi-flash-0": "20Gi", "extstore-10gi-flash-1": "20Gi"}))
	g.Eventually(progressingOf(t, mc)).Should(Equal("ExpandingVolumes: Expanding the extstore volumes from 10240Mi to 20480Mi: 0/2 have grown"))
	g.Expect(eventReasons(t, mc)(g)).To(ContainElement("Expanding"))
	// Until every volume has grown, memcached keeps the file it has.
	reconcileNow(t, ns, mc.Name)
	set := statefulSetOf(t, mc)
	g.Expect(set.DeletionTimestamp).To(BeNil(), "the StatefulSet was recreated before its volumes grew")
	g.Expect(set.ResourceVersion).To(Equal(before.ResourceVersion))
	g.Expect(set.Spec.Template.Spec.Containers[0].Args).To(ContainElement(ContainSubstring("ext_path=" + memcached.ExtstoreDir + "/extstore:9216m,")))
	claim := func(i int) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("extstore-10gi-flash-%d", i)}}
	}
	setClaimCapacity(t, claim(0), twenty)
	g.Eventually(progressingOf(t, mc)).Should(HaveSuffix("1/2 have grown"))
	// A volume whose filesystem has yet to grow has not grown.
	setClaimCapacity(t, claim(1), twenty, corev1.PersistentVolumeClaimCondition{
		Type: corev1.PersistentVolumeClaimFileSystemResizePending, Status: corev1.ConditionTrue})
	reconcileNow(t, ns, mc.Name)
	g.Expect(progressingOf(t, mc)(g)).To(HaveSuffix("1/2 have grown"))
	g.Expect(statefulSetOf(t, mc).UID).To(Equal(set.UID))

	// Grown: the claim template cannot change, so the StatefulSet goes,
	// leaving its pods and claims, and comes back with the new size under
	// the same name.
	setClaimCapacity(t, claim(1), twenty)
	orphanedByTheGarbageCollector(t, mc)
	g.Eventually(func(g Gomega) {
		current := &appsv1.StatefulSet{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(current.UID).NotTo(Equal(set.UID))
		g.Expect(current.Spec.VolumeClaimTemplates).To(HaveLen(1))
		g.Expect(current.Spec.VolumeClaimTemplates[0].Name).To(Equal("extstore-10gi"))
		g.Expect(current.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]).To(Equal(twenty))
		g.Expect(current.Spec.Template.Spec.Containers[0].Args).To(ContainElement(ContainSubstring("ext_path=" + memcached.ExtstoreDir + "/extstore:18432m,")))
		g.Expect(current.Spec.Template.Spec.Containers[0].VolumeMounts).To(ContainElement(HaveField("Name", "extstore-10gi")))
	}).Should(Succeed())
	// The pods keep their volumes: none is replaced for lacking one.
	for i := range 2 {
		pod := &corev1.Pod{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("flash-%d", i)}, pod)).To(Succeed())
		g.Expect(pod.DeletionTimestamp).To(BeNil())
	}
	g.Expect(requestedSizes(t, ns)(g)).To(Equal(map[string]string{"extstore-10gi-flash-0": "20Gi", "extstore-10gi-flash-1": "20Gi"}))
}

// TestAStatefulSetDeletedWhileItsVolumesGrowKeepsTheirSize: a StatefulSet
// deleted while its claims grow comes back with its claim template's name
// and the size of the claims that have not grown, which the pods mount:
// memcached's file never outgrows its volume.
func TestAStatefulSetDeletedWhileItsVolumesGrowKeepsTheirSize(t *testing.T) {
	g := NewWithT(t)
	mc := createExpandableMemcached(t, true)
	ns := mc.Namespace

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "30Gi" })
	g.Eventually(requestedSizes(t, ns)).Should(Equal(map[string]string{"extstore-10gi-flash-0": "30Gi", "extstore-10gi-flash-1": "30Gi"}))
	// One volume has grown part of the way, the other not at all.
	setClaimCapacity(t, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "extstore-10gi-flash-0"}},
		resource.MustParse("20Gi"))
	g.Eventually(progressingOf(t, mc)).Should(HaveSuffix("0/2 have grown"))

	before := statefulSetOf(t, mc)
	g.Expect(k8sClient.Delete(t.Context(), before)).To(Succeed())
	g.Eventually(func(g Gomega) {
		set := &appsv1.StatefulSet{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), set)).To(Succeed())
		g.Expect(set.UID).NotTo(Equal(before.UID))
		g.Expect(set.Spec.VolumeClaimTemplates).To(HaveLen(1))
		g.Expect(set.Spec.VolumeClaimTemplates[0].Name).To(Equal("extstore-10gi"))
		g.Expect(set.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]).To(Equal(resource.MustParse("10Gi")))
		g.Expect(set.Spec.Template.Spec.Containers[0].Args).To(ContainElement(ContainSubstring("ext_path=" + memcached.ExtstoreDir + "/extstore:9216m,")))
	}).Should(Succeed())
	g.Expect(progressingOf(t, mc)(g)).To(HaveSuffix("from 10240Mi to 30720Mi: 0/2 have grown"))
}

// TestExtstoreVolumesThatCannotGrowDegrade: where the StorageClass does not
// allow volume expansion, the API server refuses to grow the claims; the
// Memcached is Degraded with its reason, and memcached keeps its file and
// its pods.
func TestExtstoreVolumesThatCannotGrowDegrade(t *testing.T) {
	g := NewWithT(t)
	mc := createExpandableMemcached(t, false)
	ns := mc.Namespace
	set := statefulSetOf(t, mc)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "20Gi" })
	expectDegraded(t, mc, "VolumeExpansionRefused", "the storageclass that provisions the pvc must support resize")
	g.Expect(progressingOf(t, mc)(g)).To(HaveSuffix("0/2 have grown"))
	g.Expect(requestedSizes(t, ns)(g)).To(Equal(map[string]string{"extstore-10gi-flash-0": "10Gi", "extstore-10gi-flash-1": "10Gi"}))
	expectUnchanged(t, set)
}
