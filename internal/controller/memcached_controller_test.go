package controller

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

func TestTheSampleIsAcceptedAndDeployed(t *testing.T) {
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
	// The cache holds b's pods now: a reconcile of a leaves them out.
	reconcileNow(t, ns, a.Name)
	g.Expect(nodesOf(t, a)(g)).To(Equal([]string{"a-1"}))
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
	reconcileNow(t, ns, mc.Name)
	g.Expect(replicasOf(t, mc)(g)).To(Equal(int32(2)))
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

func TestServicesAreOwnedAndDriftCorrected(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)

	for _, tc := range []struct {
		name      string
		clusterIP string
	}{{"cache", ""}, {"cache-headless", corev1.ClusterIPNone}} {
		svc := &corev1.Service{}
		g.Eventually(func() error {
			return k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: tc.name}, svc)
		}).Should(Succeed())
		g.Expect(metav1.IsControlledBy(svc, mc)).To(BeTrue())
		g.Expect(svc.Spec.Selector).To(Equal(resources.SelectorLabels(mc)))
		g.Expect(svc.Spec.Ports).To(HaveLen(1))
		g.Expect(svc.Spec.Ports[0].Port).To(Equal(int32(11211)))
		if tc.clusterIP == corev1.ClusterIPNone {
			g.Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
			g.Expect(svc.Spec.PublishNotReadyAddresses).To(BeTrue())
		} else {
			g.Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeClusterIP))
		}

		// A hand edit of the selector is put back.
		edited := svc.DeepCopy()
		edited.Spec.Selector = map[string]string{"app": "other"}
		g.Expect(k8sClient.Patch(t.Context(), edited, client.MergeFrom(svc), client.FieldOwner("kubectl-edit"))).To(Succeed())
		g.Eventually(func(g Gomega) map[string]string {
			current := &corev1.Service{}
			g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(svc), current)).To(Succeed())
			return current.Spec.Selector
		}).Should(Equal(resources.SelectorLabels(mc)))
	}
}

func TestTheScaleSubresourceSetsTheSize(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	createPod(t, mc, "cache-a")
	g.Eventually(func(g Gomega) int32 { return getMemcached(t, g, mc).Status.Replicas }).Should(Equal(int32(1)))

	scale := &autoscalingv1.Scale{}
	g.Expect(k8sClient.SubResource("scale").Get(t.Context(), mc, scale)).To(Succeed())
	g.Expect(scale.Spec.Replicas).To(Equal(int32(2)))
	g.Expect(scale.Status.Replicas).To(Equal(int32(1)))
	g.Expect(scale.Status.Selector).To(Equal("app.kubernetes.io/instance=cache,app.kubernetes.io/name=memcached"))

	// What kubectl scale and the HorizontalPodAutoscaler do.
	scale.Spec.Replicas = 4
	g.Expect(k8sClient.SubResource("scale").Update(t.Context(), mc, client.WithSubResourceBody(scale))).To(Succeed())
	g.Expect(getMemcached(t, g, mc).Spec.Size).To(Equal(int32(4)))
	g.Eventually(replicasOf(t, mc)).Should(Equal(int32(4)))
}

func TestStatusReportsReadinessAndServers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	b := createPod(t, mc, "cache-b")
	a := createPod(t, mc, "cache-a")

	current := converged(t, mc)
	g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionAvailable)).To(BeTrue())
	g.Expect(current.Status.ServerList).To(BeEmpty())

	setPodReady(t, b, "10.1.0.2")
	setPodReady(t, a, "10.1.0.1")
	g.Eventually(func(g Gomega) {
		s := getMemcached(t, g, mc).Status
		g.Expect(s.ReadyReplicas).To(Equal(int32(2)))
		g.Expect(s.ServerList).To(Equal([]string{"10.1.0.1:11211", "10.1.0.2:11211"}))
		available := meta.FindStatusCondition(s.Conditions, cachev1alpha1.ConditionAvailable)
		g.Expect(available).NotTo(BeNil())
		g.Expect(available.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(available.Reason).To(Equal(status.ReasonAllReplicasReady))
		g.Expect(available.ObservedGeneration).To(Equal(current.Generation))
		g.Expect(meta.IsStatusConditionFalse(s.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	}).Should(Succeed())

	// The servers ConfigMap publishes the same list.
	g.Eventually(func(g Gomega) map[string]string {
		cm := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "cache-servers"}, cm)).To(Succeed())
		g.Expect(metav1.IsControlledBy(cm, mc)).To(BeTrue())
		return cm.Data
	}).Should(Equal(map[string]string{
		resources.ServersKey:    "10.1.0.1:11211\n10.1.0.2:11211\n",
		resources.ServersCSVKey: "10.1.0.1:11211,10.1.0.2:11211",
	}))
}

func TestTuningChangesThePodTemplate(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	before := deploymentOf(t, mc).Spec.Template.Spec.Containers[0]
	g.Expect(before.Args).To(ContainElements("-m", "64", "-c", "1024", "-t", "4", "-I", "1024k"))
	g.Expect(before.Resources.Limits.Memory().String()).To(Equal("102Mi"))

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.MemoryMB = 256
		s.Threads = 8
		s.ExtraArgs = []string{"-o", "modern"}
		s.NodeSelector = map[string]string{"disk": "ssd"}
		s.PodLabels = map[string]string{"team": "cache"}
	})

	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), d)).To(Succeed())
		c := d.Spec.Template.Spec.Containers[0]
		g.Expect(c.Args).To(Equal([]string{"-p", "11211", "-U", "0", "-m", "256", "-c", "1024", "-t", "8", "-I", "1024k", "-o", "modern"}))
		g.Expect(c.Resources.Limits.Memory().String()).To(Equal("313Mi"))
		g.Expect(d.Spec.Template.Spec.NodeSelector).To(Equal(map[string]string{"disk": "ssd"}))
		g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("team", "cache"))
		g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue(resources.InstanceLabel, "cache"))
	}).Should(Succeed())
	g.Eventually(eventReasons(t, mc)).Should(ContainElement("ConfigChanged"))
}

func TestEventsTellWhatChanged(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	template := deploymentOf(t, mc).Annotations[resources.TemplateHashAnnotation]

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 3 })
	g.Eventually(eventReasons(t, mc)).Should(ContainElements("Created", "Scaled"))
	// Scaling does not replace the pods: the scaled Deployment has the pod
	// template it had, and ConfigChanged is told when, and only when, that
	// changes.
	g.Expect(*deploymentOf(t, mc).Spec.Replicas).To(Equal(int32(3)))
	g.Expect(deploymentOf(t, mc).Annotations).To(HaveKeyWithValue(resources.TemplateHashAnnotation, template))
	g.Expect(eventReasons(t, mc)(g)).NotTo(ContainElement("ConfigChanged"), "scaling does not replace the pods")
}
