package e2e

import (
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
)

// watchFewestAvailableProxies follows the proxies' Deployment of mc until the
// test ends, and returns the fewest available proxies it reported once it
// had any.
func watchFewestAvailableProxies(t *testing.T, mc *cachev1alpha1.Memcached) func() int32 {
	t.Helper()
	c, err := client.NewWithWatch(cluster.Config, client.Options{Scheme: k8sClient.Scheme()})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	w, err := c.Watch(t.Context(), &appsv1.DeploymentList{}, client.InNamespace(mc.Namespace),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", resources.ProxyName(mc))})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	t.Cleanup(w.Stop)
	var mu sync.Mutex
	fewest := int32(-1)
	go func() {
		for e := range w.ResultChan() {
			d, ok := e.Object.(*appsv1.Deployment)
			if !ok || e.Type == watch.Deleted {
				continue
			}
			mu.Lock()
			if fewest < 0 || d.Status.AvailableReplicas < fewest {
				fewest = d.Status.AvailableReplicas
			}
			mu.Unlock()
		}
	}()
	return func() int32 {
		mu.Lock()
		defer mu.Unlock()
		return fewest
	}
}

func TestProxiesServeTheRingBehindTheService(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := createStatefulMemcached(t, ns, "ring", 3, func(s *cachev1alpha1.MemcachedSpec) {
		s.Proxy = &cachev1alpha1.ProxySpec{Enabled: true}
	})
	expectConverged(t, mc, 3)

	routes := func(g Gomega) string {
		cm := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "ring-proxy"}, cm)).To(Succeed())
		g.Expect(metav1.IsControlledBy(cm, getMemcached(t, g, mc))).To(BeTrue())
		return cm.Data[memcached.ProxyRoutesKey]
	}
	routed := func(n int) func(string) bool {
		return func(r string) bool {
			for i, name := range stableNames(mc, 4) {
				if (i < n) != strings.Contains(r, `"`+name+`"`) {
					return false
				}
			}
			return true
		}
	}
	g.Eventually(routes).Should(Satisfy(routed(3)))
	g.Eventually(func(g Gomega) *cachev1alpha1.ProxyStatus { return getMemcached(t, g, mc).Status.Proxy }).Should(Equal(
		&cachev1alpha1.ProxyStatus{Address: "ring." + ns + ".svc:11211", Replicas: 2, ReadyReplicas: 2}))

	// The Service <name> has the proxies as its endpoints, and no server;
	// the headless Service keeps the servers.
	endpoints := func(service string) func(g Gomega) []string {
		return func(g Gomega) []string {
			slices := &discoveryv1.EndpointSliceList{}
			g.Expect(k8sClient.List(t.Context(), slices, client.InNamespace(ns),
				client.MatchingLabels{discoveryv1.LabelServiceName: service})).To(Succeed())
			var pods []string
			for _, s := range slices.Items {
				for _, e := range s.Endpoints {
					if e.TargetRef != nil {
						pods = append(pods, e.TargetRef.Name)
					}
				}
			}
			return pods
		}
	}
	g.Eventually(endpoints("ring")).Should(And(HaveLen(2), HaveEach(HavePrefix("ring-proxy-"))))
	g.Eventually(endpoints("ring-headless")).Should(ConsistOf("ring-0", "ring-1", "ring-2"))

	// A reconcile with nothing to change writes nothing.
	g.Eventually(func(g Gomega) {
		metrics, err := operator.Metrics(t.Context())
		g.Expect(err).NotTo(HaveOccurred())
		writes := writeRequests(metrics)
		reconcileNow(t, mc)
		metrics, err = operator.Metrics(t.Context())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(writeRequests(metrics)).To(Equal(writes), "a reconcile of the converged Memcached sent write requests")
	}).Should(Succeed())

	// A scale-up reaches the routes once the new server is ready; the
	// proxies are replaced without ever fewer available than asked for.
	fewest := watchFewestAvailableProxies(t, mc)
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 4 })
	expectConverged(t, mc, 4)
	g.Eventually(routes).Should(Satisfy(routed(4)))
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "ring-proxy"}, d)).To(Succeed())
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		g.Expect(d.Status.UpdatedReplicas).To(Equal(int32(2)))
		g.Expect(d.Status.Replicas).To(Equal(int32(2)))
		g.Expect(d.Status.AvailableReplicas).To(Equal(int32(2)))
	}).Should(Succeed())
	g.Expect(fewest()).To(BeNumerically(">=", 2), "the proxies' rollout left fewer than 2 available")

	// Off: the proxies go, and the Service has the servers again.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Proxy.Enabled = false })
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "ring-proxy"}, &appsv1.Deployment{}))
	}).Should(BeTrue())
	g.Eventually(endpoints("ring")).Should(ConsistOf("ring-0", "ring-1", "ring-2", "ring-3"))
	expectConverged(t, mc, 4)
}
