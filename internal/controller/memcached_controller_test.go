package controller

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

const timeout = 20 * time.Second

func init() {
	SetDefaultEventuallyTimeout(timeout)
	SetDefaultConsistentlyDuration(2 * time.Second)
}

func createMemcached(t *testing.T, namespace, name string, size int32) *cachev1alpha1.Memcached {
	t.Helper()
	mc := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       cachev1alpha1.MemcachedSpec{Size: size},
	}
	if err := k8sClient.Create(t.Context(), mc); err != nil {
		t.Fatalf("Failed to create Memcached: %v", err)
	}
	return mc
}

// createPod creates a pod that carries the labels of mc's pods, as the
// ReplicaSet controller would (envtest runs no controller-manager).
func createPod(t *testing.T, mc *cachev1alpha1.Memcached, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: mc.Namespace, Name: name, Labels: resources.Labels(mc)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "memcached", Image: resources.DefaultImage}}},
	}
	if err := k8sClient.Create(t.Context(), pod); err != nil {
		t.Fatalf("Failed to create pod: %v", err)
	}
	return pod
}

// deploymentOf waits for the Deployment of mc to exist and returns it.
func deploymentOf(t *testing.T, mc *cachev1alpha1.Memcached) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	NewWithT(t).Eventually(func() error {
		return k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), d)
	}).Should(Succeed())
	return d
}

// nodesOf returns a function that reads mc's status.nodes, for Eventually.
func nodesOf(t *testing.T, mc *cachev1alpha1.Memcached) func(Gomega) []string {
	return func(g Gomega) []string {
		current := &cachev1alpha1.Memcached{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		return current.Status.Nodes
	}
}

func replicasOf(t *testing.T, mc *cachev1alpha1.Memcached) func(Gomega) int32 {
	return func(g Gomega) int32 {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), d)).To(Succeed())
		g.Expect(d.Spec.Replicas).NotTo(BeNil())
		return *d.Spec.Replicas
	}
}

func TestSeedSample(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)

	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "cache_v1alpha1_memcached.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	mc := &cachev1alpha1.Memcached{}
	g.Expect(yaml.UnmarshalStrict(data, mc)).To(Succeed())
	g.Expect(mc.APIVersion).To(Equal("cache.example.com/v1alpha1"))
	g.Expect(mc.Kind).To(Equal("Memcached"))
	mc.Namespace = ns
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())

	d := deploymentOf(t, mc)
	g.Expect(d.Name).To(Equal("example-memcached"))
	g.Expect(*d.Spec.Replicas).To(Equal(int32(3)))

	for _, name := range []string{"example-memcached-x2", "example-memcached-a7", "example-memcached-m5"} {
		createPod(t, mc, name)
	}
	g.Eventually(nodesOf(t, mc)).Should(Equal([]string{"example-memcached-a7", "example-memcached-m5", "example-memcached-x2"}))
}

func TestDeploymentIsOwnedAndLabelled(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 3)

	d := deploymentOf(t, mc)
	g.Expect(*d.Spec.Replicas).To(Equal(int32(3)))
	g.Expect(metav1.IsControlledBy(d, mc)).To(BeTrue(), "owner references %v", d.OwnerReferences)
	g.Expect(d.Labels).To(Equal(map[string]string{
		"app.kubernetes.io/name":       "memcached",
		"app.kubernetes.io/instance":   "cache",
		"app.kubernetes.io/managed-by": "memcached-operator",
	}))
	g.Expect(d.Spec.Selector.MatchLabels).To(Equal(map[string]string{
		"app.kubernetes.io/name":     "memcached",
		"app.kubernetes.io/instance": "cache",
	}))
	g.Expect(d.Spec.Template.Spec.Containers).To(HaveLen(1))
	g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(resources.DefaultImage))
	g.Expect(d.Spec.Template.Spec.Containers[0].Ports).To(ContainElement(
		HaveField("ContainerPort", int32(11211))))
}

func TestSizeChangeScalesDeployment(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 3)
	g.Eventually(replicasOf(t, mc)).Should(Equal(int32(3)))

	for _, size := range []int32{5, 1, 0} {
		patch := client.MergeFrom(mc.DeepCopy())
		mc.Spec.Size = size
		g.Expect(k8sClient.Patch(t.Context(), mc, patch)).To(Succeed())
		g.Eventually(replicasOf(t, mc)).Should(Equal(size))
	}
}

func TestDriftIsReverted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 3)
	d := deploymentOf(t, mc)
	want := d.Spec.Template.Spec.Containers[0].DeepCopy()

	// Someone edits the Deployment by hand.
	edited := d.DeepCopy()
	edited.Spec.Replicas = new(int32(7))
	edited.Spec.Template.Spec.Containers[0].Image = "nginx:1.27"
	edited.Spec.Template.Spec.Containers[0].Args = []string{"-m", "1024"}
	edited.Labels[resources.InstanceLabel] = "someone-else"
	g.Expect(k8sClient.Patch(t.Context(), edited, client.MergeFrom(d), client.FieldOwner("kubectl-edit"))).To(Succeed())

	g.Eventually(func(g Gomega) {
		current := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(current.UID).To(Equal(d.UID), "the Deployment was updated, not recreated")
		g.Expect(*current.Spec.Replicas).To(Equal(int32(3)))
		g.Expect(current.Spec.Template.Spec.Containers[0].Image).To(Equal(want.Image))
		g.Expect(current.Spec.Template.Spec.Containers[0].Args).To(Equal(want.Args))
		g.Expect(current.Labels).To(HaveKeyWithValue(resources.InstanceLabel, "cache"))
	}).Should(Succeed())
}

func TestDeletedDeploymentIsRecreated(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	d := deploymentOf(t, mc)

	g.Expect(k8sClient.Delete(t.Context(), d)).To(Succeed())

	g.Eventually(func(g Gomega) {
		current := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(current.UID).NotTo(Equal(d.UID))
		g.Expect(*current.Spec.Replicas).To(Equal(int32(2)))
	}).Should(Succeed())
}

func TestStatusNodesFollowPods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 3)
	deploymentOf(t, mc)

	pods := map[string]*corev1.Pod{}
	for _, name := range []string{"cache-c", "cache-a", "cache-b"} {
		pods[name] = createPod(t, mc, name)
	}
	g.Eventually(nodesOf(t, mc)).Should(Equal([]string{"cache-a", "cache-b", "cache-c"}))

	g.Expect(k8sClient.Delete(t.Context(), pods["cache-b"])).To(Succeed())
	g.Eventually(nodesOf(t, mc)).Should(Equal([]string{"cache-a", "cache-c"}))

	for _, pod := range []string{"cache-a", "cache-c"} {
		g.Expect(k8sClient.Delete(t.Context(), pods[pod])).To(Succeed())
	}
	g.Eventually(nodesOf(t, mc)).Should(BeEmpty())
}

func TestMemcachedsInOneNamespaceStaySeparate(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	a := createMemcached(t, ns, "a", 1)
	b := createMemcached(t, ns, "b", 2)

	da, db := deploymentOf(t, a), deploymentOf(t, b)
	g.Expect(*da.Spec.Replicas).To(Equal(int32(1)))
	g.Expect(*db.Spec.Replicas).To(Equal(int32(2)))
	g.Expect(da.Spec.Selector.MatchLabels).NotTo(Equal(db.Spec.Selector.MatchLabels))

	createPod(t, a, "a-1")
	createPod(t, b, "b-1")
	createPod(t, b, "b-2")
	g.Eventually(nodesOf(t, a)).Should(Equal([]string{"a-1"}))
	g.Eventually(nodesOf(t, b)).Should(Equal([]string{"b-1", "b-2"}))
	g.Consistently(nodesOf(t, a)).Should(Equal([]string{"a-1"}))
}

func TestNegativeSizeIsRejected(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)

	mc := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache"},
		Spec:       cachev1alpha1.MemcachedSpec{Size: -1},
	}
	err := k8sClient.Create(t.Context(), mc)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
	g.Expect(err.Error()).To(ContainSubstring("spec.size"))
	g.Expect(err.Error()).To(ContainSubstring("greater than or equal to 0"))

	// An existing Memcached cannot be changed to a negative size either.
	mc = createMemcached(t, ns, "existing", 2)
	deploymentOf(t, mc)
	patch := client.MergeFrom(mc.DeepCopy())
	mc.Spec.Size = -3
	err = k8sClient.Patch(t.Context(), mc, patch)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
	g.Consistently(replicasOf(t, mc)).Should(Equal(int32(2)))
}

func TestSizeDefaultsToOne(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)

	// A manifest that leaves size out, as kubectl would send it.
	u := &unstructured.Unstructured{}
	g.Expect(yaml.Unmarshal([]byte("apiVersion: cache.example.com/v1alpha1\nkind: Memcached\nmetadata:\n  name: cache\nspec: {}\n"), &u.Object)).To(Succeed())
	u.SetNamespace(ns)
	g.Expect(k8sClient.Create(t.Context(), u)).To(Succeed())

	mc := &cachev1alpha1.Memcached{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(u), mc)).To(Succeed())
	g.Expect(mc.Spec.Size).To(Equal(int32(1)))
	g.Eventually(replicasOf(t, mc)).Should(Equal(int32(1)))
}
