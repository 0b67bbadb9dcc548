package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/test/internal/invariants"
	"example.com/memcached-operator/test/internal/localrun"
)

// newNamespace creates a namespace of its own for a test, with extra labels,
// and deletes it, with everything in it, when the test ends.
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: labels}}
	if err := k8sClient.Create(t.Context(), ns); err != nil {
		t.Fatalf("Failed to create namespace: %v", err)
	}
	t.Cleanup(func() {
		// Gone before the next test starts, so that no test sees the
		// operator at work on another test's objects.
		ctx := context.Background()
		if err := k8sClient.Delete(ctx, ns); client.IgnoreNotFound(err) != nil {
			t.Errorf("Failed to delete namespace %s: %v", ns.Name, err)
			return
		}
		NewWithT(t).Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{}))
		}, 2*time.Minute).Should(BeTrue(), "namespace %s was not deleted", ns.Name)
	})
	return ns.Name
}

// createMemcached creates a Memcached "cache" of size.
func createMemcached(t *testing.T, namespace string, size int32) *cachev1alpha1.Memcached {
	t.Helper()
	mc := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "cache"},
		Spec:       cachev1alpha1.MemcachedSpec{Size: size},
	}
	if err := k8sClient.Create(t.Context(), mc); err != nil {
		t.Fatalf("Failed to create Memcached: %v", err)
	}
	return mc
}

// runningPods returns the sorted names of mc's pods that are Running and not
// being deleted.
func runningPods(g Gomega, mc *cachev1alpha1.Memcached) []string {
	pods := &corev1.PodList{}
	g.Expect(k8sClient.List(context.Background(), pods, client.InNamespace(mc.Namespace),
		client.MatchingLabels(resources.SelectorLabels(mc)))).To(Succeed())
	var names []string
	for _, pod := range pods.Items {
		if pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil {
			names = append(names, pod.Name)
		}
	}
	slices.Sort(names)
	return names
}

// expectConverged waits until mc has size Running pods, status.nodes names
// exactly them, the operator reports the rollout complete, and the
// invariants of a settled Memcached hold.
func expectConverged(t *testing.T, mc *cachev1alpha1.Memcached, size int) []string {
	t.Helper()
	var nodes []string
	NewWithT(t).Eventually(func(g Gomega) {
		current := &cachev1alpha1.Memcached{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		running := runningPods(g, current)
		g.Expect(running).To(HaveLen(size))
		g.Expect(current.Status.Nodes).To(Equal(running))
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		g.Expect(current.Status.ReadyReplicas).To(Equal(int32(size)))
		g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionProgressing)).To(BeTrue(),
			"conditions %+v", current.Status.Conditions)
		g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
		violations, err := invariants.Memcached(t.Context(), k8sClient, current)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(violations).To(BeEmpty())
		nodes = current.Status.Nodes
	}).Should(Succeed())
	return nodes
}

func TestTheSampleConverges(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)

	out, err := runKubectl("apply", "--namespace="+ns, "-f", "config/samples/cache_v1alpha1_memcached.yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)

	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "example-memcached"}}
	nodes := expectConverged(t, mc, 3)
	g.Expect(nodes).To(HaveEach(HavePrefix("example-memcached-")))
}

func TestSizeAndTheScaleSubresourceScaleTheMemcached(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := createMemcached(t, ns, 3)
	expectConverged(t, mc, 3)

	for _, size := range []int32{5, 1} {
		patch := client.MergeFrom(mc.DeepCopy())
		mc.Spec.Size = size
		g.Expect(k8sClient.Patch(t.Context(), mc, patch)).To(Succeed())
		expectConverged(t, mc, int(size))
	}

	// The /scale subresource, as kubectl scale and autoscalers use it.
	out, err := runKubectl("scale", "--namespace="+ns, "mc/cache", "--replicas=4")
	g.Expect(err).NotTo(HaveOccurred(), out)
	expectConverged(t, mc, 4)

	g.Eventually(func(g Gomega) {
		current := &cachev1alpha1.Memcached{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(current.Status.ReadyReplicas).To(Equal(int32(4)))
		g.Expect(current.Status.ServerList).To(HaveLen(4))
		g.Expect(meta.IsStatusConditionTrue(current.Status.Conditions, cachev1alpha1.ConditionAvailable)).To(BeTrue())
		g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionProgressing)).To(BeTrue())
		g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	}).Should(Succeed())
	out, err = runKubectl("get", "--namespace="+ns, "mc")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(strings.Fields(strings.Split(out, "\n")[0])).To(Equal([]string{"NAME", "SIZE", "READY", "AVAILABLE", "AGE"}))
	g.Expect(strings.Fields(strings.Split(out, "\n")[1])[:4]).To(Equal([]string{"cache", "4", "4", "True"}))

	g.Eventually(func(g Gomega) {
		out, err := runKubectl("describe", "--namespace="+ns, "mc", "cache")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("Scaled Deployment cache from 1 to 4 replicas"))
		g.Expect(out).To(ContainSubstring("Created Deployment cache, Service cache, Service cache-headless, ConfigMap cache-servers"))
	}).Should(Succeed())
}

func TestDeletingMemcachedGarbageCollectsEverything(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := createMemcached(t, ns, 2)
	expectConverged(t, mc, 2)

	g.Expect(k8sClient.Delete(t.Context(), mc)).To(Succeed())

	g.Eventually(func(g Gomega) {
		err := k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), &appsv1.Deployment{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Deployment: %v", err)
		replicaSets := &appsv1.ReplicaSetList{}
		g.Expect(k8sClient.List(t.Context(), replicaSets, client.InNamespace(ns))).To(Succeed())
		g.Expect(replicaSets.Items).To(BeEmpty())
		pods := &corev1.PodList{}
		g.Expect(k8sClient.List(t.Context(), pods, client.InNamespace(ns))).To(Succeed())
		g.Expect(pods.Items).To(BeEmpty())
	}).Should(Succeed())
}

func TestRestrictedNamespaceAdmitsMemcachedPods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	})

	// The namespace really refuses what is not restricted-compliant.
	privileged := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "root"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	err := k8sClient.Create(t.Context(), privileged)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "a non-compliant pod was not refused: %v", err)
	g.Expect(err.Error()).To(ContainSubstring("violates PodSecurity"))

	mc := createMemcached(t, ns, 2)
	expectConverged(t, mc, 2)
}

func TestPodsThatCannotBeCreatedDegradeTheMemcached(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "one-pod"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}},
	}
	g.Expect(k8sClient.Create(t.Context(), quota)).To(Succeed())
	g.Eventually(func(g Gomega) {
		current := &corev1.ResourceQuota{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(quota), current)).To(Succeed())
		g.Expect(current.Status.Hard).NotTo(BeEmpty())
	}).Should(Succeed())

	mc := createMemcached(t, ns, 2)
	g.Eventually(func(g Gomega) {
		current := &cachev1alpha1.Memcached{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		degraded := meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionDegraded)
		g.Expect(degraded).NotTo(BeNil())
		g.Expect(degraded.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(degraded.Reason).To(Equal("FailedCreate"))
		g.Expect(degraded.Message).To(ContainSubstring("exceeded quota"))
		g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionAvailable)).To(BeTrue())
		g.Expect(current.Status.ReadyReplicas).To(Equal(int32(1)))
	}).Should(Succeed())

	// Lifting the quota lets the second pod in, and the condition clears.
	g.Expect(k8sClient.Delete(t.Context(), quota)).To(Succeed())
	expectConverged(t, mc, 2)
}

func TestRestartedOperatorWritesNothing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := createMemcached(t, ns, 3)
	expectConverged(t, mc, 3)
	deployment := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), deployment)).To(Succeed())
	replicaSetsBefore := replicaSetUIDs(g, ns)
	g.Expect(replicaSetsBefore).To(HaveLen(1))

	g.Expect(operator.Stop()).To(Succeed())
	g.Expect(startOperator(t.Context())).To(Succeed())

	// The new process reconciles every Memcached once, and finds nothing to do.
	memcacheds := &cachev1alpha1.MemcachedList{}
	g.Expect(k8sClient.List(t.Context(), memcacheds)).To(Succeed())
	expectOperatorIdle(t, float64(len(memcacheds.Items)))
	metrics, err := operator.Metrics(t.Context())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(writeRequests(metrics)).To(BeZero(), "the restarted operator sent write requests")
	// A reconcile the new process did not start with finds nothing to do
	// either.
	reconcileNow(t, mc)
	metrics, err = operator.Metrics(t.Context())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(writeRequests(metrics)).To(BeZero(), "a reconcile of the converged Memcached sent write requests")

	current := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
	g.Expect(current.Generation).To(Equal(deployment.Generation), "the Deployment was changed")
	g.Expect(replicaSetUIDs(g, ns)).To(Equal(replicaSetsBefore), "the pods were rolled")
}

// TestEveryOverlayIsAccepted has the API server check, in a dry run, every
// kustomize directory of config/: the installable overlays, and the parts
// config/default is made of or can add (prometheus, network-policy), each
// placed in the operator's namespace as config/default places them.
func TestEveryOverlayIsAccepted(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(repoRoot, "config", "*", "kustomization.yaml"))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	NewWithT(t).Expect(len(dirs)).To(BeNumerically(">=", 8))
	for _, path := range dirs {
		dir, _ := filepath.Abs(filepath.Dir(path))
		t.Run(filepath.Base(dir), func(t *testing.T) {
			g := NewWithT(t)
			overlay := t.TempDir()
			g.Expect(os.Symlink(dir, filepath.Join(overlay, "base"))).To(Succeed())
			g.Expect(os.WriteFile(filepath.Join(overlay, "kustomization.yaml"),
				[]byte("namespace: memcached-operator-system\nresources:\n- base\n"), 0o644)).To(Succeed())
			out, err := runKubectl("apply", "--server-side", "--dry-run=server", "-k", overlay)
			g.Expect(err).NotTo(HaveOccurred(), "%s: %s", dir, out)
			if filepath.Base(dir) == "metrics-tls" {
				objects, err := localrun.Render(t.Context(), kubectl, overlay)
				g.Expect(err).NotTo(HaveOccurred())
				checkMetricsTLS(g, indexObjects(objects))
			}
		})
	}
	NewWithT(t).Expect(filepath.Join(repoRoot, "config", "metrics-tls", "kustomization.yaml")).To(BeAnExistingFile())
}

// checkMetricsTLS checks config/metrics-tls: cert-manager issues the metrics
// Service's certificate into the Secret the manager serves, and the
// ServiceMonitor verifies it with that Secret's CA under the Service's name.
func checkMetricsTLS(g Gomega, byID map[string]*unstructured.Unstructured) {
	const (
		namespace  = "memcached-operator-system"
		secret     = "metrics-server-cert"
		serverName = "memcached-operator-controller-manager-metrics-service." + namespace + ".svc"
	)
	g.Expect(byID).To(HaveKey("Service/" + namespace + "/memcached-operator-controller-manager-metrics-service"))
	issuer := byID["Issuer/"+namespace+"/memcached-operator-selfsigned-issuer"]
	g.Expect(issuer).NotTo(BeNil(), "no Issuer")
	certificate := byID["Certificate/"+namespace+"/memcached-operator-metrics-certs"]
	g.Expect(certificate).NotTo(BeNil(), "no Certificate")
	g.Expect(certificate.Object["spec"]).To(And(
		HaveKeyWithValue("secretName", secret),
		HaveKeyWithValue("dnsNames", ConsistOf(serverName, serverName+".cluster.local")),
		HaveKeyWithValue("issuerRef", HaveKeyWithValue("name", issuer.GetName()))))

	monitor := byID["ServiceMonitor/"+namespace+"/memcached-operator-controller-manager-metrics-monitor"]
	g.Expect(monitor).NotTo(BeNil(), "no ServiceMonitor")
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	g.Expect(endpoints).To(HaveLen(1))
	tlsConfig, _, _ := unstructured.NestedMap(endpoints[0].(map[string]any), "tlsConfig")
	g.Expect(tlsConfig).To(HaveKeyWithValue("serverName", serverName))
	g.Expect(tlsConfig).NotTo(HaveKeyWithValue("insecureSkipVerify", true))
	g.Expect(tlsConfig).To(HaveKeyWithValue("ca", HaveKeyWithValue("secret", And(
		HaveKeyWithValue("name", secret), HaveKeyWithValue("key", "ca.crt")))))

	pod := deploymentOf(g, byID["Deployment/"+namespace+"/memcached-operator-controller-manager"]).Spec.Template.Spec
	manager := pod.Containers[0]
	i := slices.IndexFunc(manager.Args, func(a string) bool { return strings.HasPrefix(a, "--metrics-cert-path=") })
	g.Expect(i).NotTo(Equal(-1), "the manager has no --metrics-cert-path")
	g.Expect(manager.VolumeMounts).To(ContainElement(And(
		HaveField("MountPath", strings.TrimPrefix(manager.Args[i], "--metrics-cert-path=")), HaveField("Name", "metrics-certs"))))
	g.Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", "metrics-certs"), HaveField("Secret.SecretName", secret))))
}

func replicaSetUIDs(g Gomega, namespace string) []string {
	list := &appsv1.ReplicaSetList{}
	g.Expect(k8sClient.List(context.Background(), list, client.InNamespace(namespace))).To(Succeed())
	uids := make([]string, 0, len(list.Items))
	for _, rs := range list.Items {
		uids = append(uids, string(rs.UID))
	}
	slices.Sort(uids)
	return uids
}

// writeRequests counts the operator's API requests that can change something.
func writeRequests(metrics map[string]*dto.MetricFamily) float64 {
	var n float64
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		n += sum(metrics, "rest_client_requests_total", map[string]string{"method": method})
	}
	return n
}

// sum adds the values of the samples of a counter or gauge whose labels
// include labels.
func sum(metrics map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	family, ok := metrics[name]
	if !ok {
		return 0
	}
	var total float64
samples:
	for _, m := range family.GetMetric() {
		for key, value := range labels {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == key && l.GetValue() == value
			}) {
				continue samples
			}
		}
		switch {
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		}
	}
	return total
}
