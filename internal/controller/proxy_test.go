package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
)

// proxyRoutesOf returns the routes the proxies of mc read.
func proxyRoutesOf(t *testing.T, mc *cachev1alpha1.Memcached) func(Gomega) string {
	return func(g Gomega) string {
		cm := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: mc.Namespace, Name: resources.ProxyName(mc)}, cm)).To(Succeed())
		return cm.Data[memcached.ProxyRoutesKey]
	}
}

func proxyDeploymentOf(t *testing.T, g Gomega, mc *cachev1alpha1.Memcached) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: mc.Namespace, Name: resources.ProxyName(mc)}, d)).To(Succeed())
	return d
}

func serviceSelectorOf(t *testing.T, mc *cachev1alpha1.Memcached) func(Gomega) map[string]string {
	return func(g Gomega) map[string]string {
		svc := &corev1.Service{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), svc)).To(Succeed())
		return svc.Spec.Selector
	}
}

func TestProxiesRouteToTheServerListAndTakeTheService(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ring"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 2, Workload: cachev1alpha1.WorkloadStatefulSet,
			Proxy: &cachev1alpha1.ProxySpec{Enabled: true}}}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())

	// Before any server is ready, the proxies route nowhere; the Service
	// selects the servers until a proxy is ready.
	g.Eventually(proxyRoutesOf(t, mc)).Should(ContainSubstring("route_null"))
	g.Eventually(serviceSelectorOf(t, mc)).Should(Equal(resources.SelectorLabels(mc)))
	routesDigest := func(g Gomega) string {
		return proxyDeploymentOf(t, g, mc).Spec.Template.Annotations[resources.ProxyRoutesDigestAnnotation]
	}
	g.Eventually(routesDigest).ShouldNot(BeEmpty())
	empty := routesDigest(g)

	// The ready servers are routed to, and the proxies replaced.
	createStatefulPods(t, mc, 2)
	setStatefulSetReady(t, mc)
	g.Eventually(serverListOf(t, mc)).Should(Equal(stableNames(mc, 2)))
	g.Eventually(proxyRoutesOf(t, mc)).Should(And(ContainSubstring(stableNames(mc, 2)[0]), ContainSubstring(stableNames(mc, 2)[1])))
	g.Eventually(routesDigest).ShouldNot(Equal(empty))
	d := proxyDeploymentOf(t, g, mc)
	g.Expect(d.Spec.Replicas).To(Equal(ptr.To[int32](cachev1alpha1.DefaultProxyReplicas)))
	g.Expect(d.OwnerReferences).To(ContainElement(HaveField("UID", getMemcached(t, g, mc).UID)))
	g.Expect(d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue()).To(Equal(0), "a route change must never leave no proxy")
	budget := &policyv1.PodDisruptionBudget{}
	g.Eventually(func() error {
		return k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: resources.ProxyName(mc)}, budget)
	}).Should(Succeed())

	// Once a proxy is ready, the Service sends clients to the proxies, and
	// the status says where single-address clients go and how many proxies
	// are ready.
	g.Expect(serviceSelectorOf(t, mc)(g)).To(Equal(resources.SelectorLabels(mc)))
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 2}
	g.Expect(k8sClient.Status().Update(t.Context(), d)).To(Succeed())
	g.Eventually(serviceSelectorOf(t, mc)).Should(Equal(resources.ProxySelectorLabels(mc)))
	g.Eventually(func(g Gomega) *cachev1alpha1.ProxyStatus { return getMemcached(t, g, mc).Status.Proxy }).Should(Equal(
		&cachev1alpha1.ProxyStatus{Address: "ring." + ns + ".svc:11211", Replicas: 2, ReadyReplicas: 2}))

	// The operator's gauges of the proxies follow.
	g.Eventually(func(g Gomega) map[string]float64 {
		return gauges(g, "memcached_operator_memcached_ready_proxies", ns, "ring")
	}).Should(Equal(map[string]float64{"": 2}))
	g.Expect(gauges(g, "memcached_operator_memcached_desired_proxies", ns, "ring")).To(Equal(map[string]float64{"": 2}))

	// Steady state: nothing is written.
	expectNoOpReconcile(t, mc)

	// Off again: the proxies go and the Service selects the servers.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Proxy.Enabled = false })
	g.Eventually(serviceSelectorOf(t, mc)).Should(Equal(resources.SelectorLabels(mc)))
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: resources.ProxyName(mc)}, &appsv1.Deployment{}))
	}).Should(BeTrue())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: resources.ProxyName(mc)}, &corev1.ConfigMap{}))
	}).Should(BeTrue())
	g.Eventually(func(g Gomega) *cachev1alpha1.ProxyStatus { return getMemcached(t, g, mc).Status.Proxy }).Should(BeNil())
	g.Expect(gauges(g, "memcached_operator_memcached_ready_proxies", ns, "ring")).To(BeEmpty())
}
