package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func TestTheOperatorsGaugesFollowTheStatusAndGoWithTheMemcached(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	current := converged(t, mc)

	g.Expect(gauges(g, "memcached_operator_memcached_desired_servers", ns, "cache")).To(Equal(map[string]float64{"": 2}))
	g.Expect(gauges(g, "memcached_operator_memcached_ready_servers", ns, "cache")).
		To(Equal(map[string]float64{"": float64(current.Status.ReadyReplicas)}))
	conditions := gauges(g, "memcached_operator_memcached_condition", ns, "cache")
	for _, c := range current.Status.Conditions {
		for _, s := range conditionStatuses {
			want := 0.0
			if c.Status == s {
				want = 1
			}
			g.Expect(conditions).To(HaveKeyWithValue(c.Type+"/"+string(s), want), "condition %s", c.Type)
		}
	}
	g.Expect(conditions).To(HaveLen(3*len(current.Status.Conditions)), "a condition the Memcached has not has a series")
	g.Expect(gauges(g, "memcached_operator_memcached_desired_servers", ns, "other")).To(BeEmpty())

	// A change of size shows at once; a condition that goes loses its series.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Size = 3
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	})
	g.Eventually(func(g Gomega) map[string]float64 {
		return gauges(g, "memcached_operator_memcached_desired_servers", ns, "cache")
	}).Should(Equal(map[string]float64{"": 3}))
	g.Eventually(func(g Gomega) map[string]float64 {
		return gauges(g, "memcached_operator_memcached_condition", ns, "cache")
	}).Should(HaveKeyWithValue(cachev1alpha1.ConditionMonitoringReady+"/False", 1.0))
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Monitoring = nil })
	g.Eventually(func(g Gomega) map[string]float64 {
		return gauges(g, "memcached_operator_memcached_condition", ns, "cache")
	}).ShouldNot(HaveKey(cachev1alpha1.ConditionMonitoringReady + "/False"))

	// Deleting the Memcached deletes its series.
	g.Expect(k8sClient.Delete(t.Context(), mc)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), &cachev1alpha1.Memcached{}))
	}).Should(BeTrue())
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"memcached_operator_memcached_desired_servers", "memcached_operator_memcached_ready_servers",
			"memcached_operator_memcached_condition"} {
			g.Expect(gauges(g, name, ns, "cache")).To(BeEmpty(), name)
		}
	}).Should(Succeed())
}

// gauges returns the values of the gauge name of the Memcached
// namespace/memcached, by type/status for the condition gauge and by ""
// for the others.
func gauges(g Gomega, name, namespace, memcached string) map[string]float64 {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
		for _, m := range family.GetMetric() {
			labels := labelMap(m)
			if labels["namespace"] != namespace || labels["memcached"] != memcached {
				continue
			}
			key := ""
			if t, ok := labels["type"]; ok {
				key = t + "/" + labels["status"]
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

func labelMap(m *dto.Metric) map[string]string {
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	return labels
}
