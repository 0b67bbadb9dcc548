package e2e

import (
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/test/internal/localrun"
	"example.com/memcached-operator/test/internal/simcluster"
)

func TestServiceMonitorIsCreatedAndKept(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 2, Monitoring: &cachev1alpha1.MonitoringSpec{
			Enabled: true, Interval: "30s", ServiceMonitorLabels: map[string]string{"release": "prometheus"}}},
	}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	expectConverged(t, mc, 2)

	sm := &unstructured.Unstructured{}
	sm.SetGroupVersionKind(resources.ServiceMonitorGVK)
	endpoint := func(g Gomega) map[string]any {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), sm)).To(Succeed())
		g.Expect(metav1.IsControlledBy(sm, mc)).To(BeTrue())
		g.Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
		endpoints, _, err := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(endpoints).To(HaveLen(1))
		return endpoints[0].(map[string]any)
	}
	g.Eventually(endpoint).Should(And(HaveKeyWithValue("port", "memcached"), HaveKeyWithValue("path", "/scrape"),
		HaveKeyWithValue("interval", "30s")))
	g.Eventually(func(g Gomega) {
		current := &cachev1alpha1.Memcached{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(current.Status.Conditions, cachev1alpha1.ConditionMonitoringReady)).To(BeTrue())
	}).Should(Succeed())

	// A hand edit is put back: the operator watches ServiceMonitors.
	g.Expect(unstructured.SetNestedSlice(sm.Object, []any{map[string]any{"port": "other"}}, "spec", "endpoints")).To(Succeed())
	g.Expect(k8sClient.Update(t.Context(), sm)).To(Succeed())
	g.Eventually(endpoint).Should(HaveKeyWithValue("port", "memcached"))

	// Turning monitoring off removes it.
	current := &cachev1alpha1.Memcached{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
	patch := client.MergeFrom(current.DeepCopy())
	current.Spec.Monitoring.Enabled = false
	g.Expect(k8sClient.Patch(t.Context(), current, patch)).To(Succeed())
	g.Eventually(func() error {
		return k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), sm)
	}).Should(MatchError(ContainSubstring("not found")))
}

// TestRemovingTheServiceMonitorAPILeavesMemcachedsHealthy removes
// prometheus-operator's CRD while the operator runs, on a cluster of its own:
// monitored Memcacheds report MonitoringReady=False and stay healthy, rather
// than degraded.
func TestRemovingTheServiceMonitorAPILeavesMemcachedsHealthy(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	dir := filepath.Join(logDir, "monitoring-api")
	own, err := simcluster.Start(ctx, simcluster.Options{BinDir: filepath.Dir(kubectl), DataDir: filepath.Join(dir, "cluster")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = own.Close() })
	c, err := client.New(own.Config, client.Options{Scheme: k8sClient.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	kubectlOn := func(args ...string) {
		out, err := runKubectlAs(own.Kubeconfig, args...)
		g.Expect(err).NotTo(HaveOccurred(), out)
	}
	kubectlOn("apply", "--server-side", "-f", testCRDsDir)
	kubectlOn("wait", "--for=condition=Established", "--timeout=60s", "-f", testCRDsDir)
	kubeconfig := filepath.Join(dir, "operator.kubeconfig")
	g.Expect(localrun.Install(ctx, own.Config, kubectl, filepath.Join(repoRoot, "config", "default"), kubeconfig)).To(Succeed())
	op, err := localrun.Start(ctx, localrun.Config{Binary: managerBinary, Kubeconfig: kubeconfig, LogPath: filepath.Join(dir, "operator.log")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = op.Stop() })

	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "cache"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1, Monitoring: &cachev1alpha1.MonitoringSpec{Enabled: true}}}
	g.Expect(c.Create(ctx, mc)).To(Succeed())
	condition := func(g Gomega, condType string) *metav1.Condition {
		current := &cachev1alpha1.Memcached{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		return meta.FindStatusCondition(current.Status.Conditions, condType)
	}
	g.Eventually(func(g Gomega) string {
		return string(condition(g, cachev1alpha1.ConditionMonitoringReady).Status)
	}).Should(Equal("True"))

	kubectlOn("delete", "-f", testCRDsDir)
	current := &cachev1alpha1.Memcached{}
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(mc), current)).To(Succeed())
	patch := client.MergeFrom(current.DeepCopy())
	current.Spec.Monitoring.Interval = "15s"
	g.Expect(c.Patch(ctx, current, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		monitoring := condition(g, cachev1alpha1.ConditionMonitoringReady)
		g.Expect(monitoring.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(monitoring.Reason).To(Equal("ServiceMonitorAPIMissing"))
		g.Expect(condition(g, cachev1alpha1.ConditionDegraded).Status).To(Equal(metav1.ConditionFalse))
	}).Should(Succeed())
}

// TestMonitoringPrometheusRuleFollowsTheSpec checks the PrometheusRule of a
// monitored Memcached: owned, scoped to it, following a threshold change,
// left alone when nothing changed, and removed when alerts are turned off.
func TestMonitoringPrometheusRuleFollowsTheSpec(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	mc := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1, Monitoring: &cachev1alpha1.MonitoringSpec{
			Enabled: true, ServiceMonitorLabels: map[string]string{"release": "prometheus"},
			Alerts: &cachev1alpha1.AlertsSpec{Labels: map[string]string{"team": "cache"}}}},
	}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	expectConverged(t, mc, 1)

	rule := &unstructured.Unstructured{}
	rule.SetGroupVersionKind(resources.PrometheusRuleGVK)
	// rules returns the rules of the PrometheusRule by alert and severity.
	rules := func(g Gomega) map[string]map[string]any {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), rule)).To(Succeed())
		g.Expect(metav1.IsControlledBy(rule, mc)).To(BeTrue())
		g.Expect(rule.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
		groups, _, err := unstructured.NestedSlice(rule.Object, "spec", "groups")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(groups).To(HaveLen(1))
		byName := map[string]map[string]any{}
		for _, r := range groups[0].(map[string]any)["rules"].([]any) {
			r := r.(map[string]any)
			labels := r["labels"].(map[string]any)
			g.Expect(labels).To(HaveKeyWithValue("team", "cache"))
			g.Expect(r["expr"]).To(ContainSubstring(`namespace="` + ns + `",memcached="cache"`))
			byName[r["alert"].(string)+"/"+labels["severity"].(string)] = r
		}
		return byName
	}
	expr := func(key string) func(g Gomega) any {
		return func(g Gomega) any { return rules(g)[key]["expr"] }
	}
	g.Eventually(rules).Should(HaveLen(7))
	g.Expect(expr("MemcachedConnectionLimitApproaching/warning")(g)).To(HaveSuffix("> 80"))
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionMonitoringReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Message).To(ContainSubstring("PrometheusRule cache holds its alert rules"))
	}).Should(Succeed())

	// A reconcile with nothing to change writes nothing. The operator may
	// still be busy with the namespaces of earlier tests, which go: the
	// count is taken again until a reconcile of this Memcached fell in a
	// window without their writes.
	before := rule.GetResourceVersion()
	g.Eventually(func(g Gomega) {
		metrics, err := operator.Metrics(t.Context())
		g.Expect(err).NotTo(HaveOccurred())
		writes := writeRequests(metrics)
		reconcileNow(t, mc)
		metrics, err = operator.Metrics(t.Context())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(writeRequests(metrics)).To(Equal(writes), "a reconcile of the converged Memcached sent write requests")
	}).Should(Succeed())
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), rule)).To(Succeed())
	g.Expect(rule.GetResourceVersion()).To(Equal(before), "the PrometheusRule was written")

	// A threshold change reaches the rule.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Monitoring.Alerts.ConnectionsWarningPercent = 70 })
	g.Eventually(expr("MemcachedConnectionLimitApproaching/warning")).Should(HaveSuffix("> 70"))

	// A rule someone else edits is put back: the API server merges the
	// groups by name, so the rules of the group become the editor's.
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), rule)).To(Succeed())
		groups, _, err := unstructured.NestedSlice(rule.Object, "spec", "groups")
		g.Expect(err).NotTo(HaveOccurred())
		group := groups[0].(map[string]any)
		for _, r := range group["rules"].([]any) {
			r.(map[string]any)["expr"] = "vector(0)"
		}
		g.Expect(unstructured.SetNestedSlice(rule.Object, groups, "spec", "groups")).To(Succeed())
		g.Expect(k8sClient.Update(t.Context(), rule, client.FieldOwner("someone-else"))).To(Succeed())
	}).Should(Succeed())
	g.Eventually(expr("MemcachedConnectionLimitApproaching/warning")).Should(HaveSuffix("> 70"))

	// Turning alerts off removes the rule, and leaves the ServiceMonitor.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Monitoring.Alerts.Enabled = ptr.To(false) })
	g.Eventually(func() error {
		return k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), rule)
	}).Should(MatchError(ContainSubstring("not found")))
	sm := &unstructured.Unstructured{}
	sm.SetGroupVersionKind(resources.ServiceMonitorGVK)
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), sm)).To(Succeed())
	g.Eventually(func(g Gomega) string {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		return meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionMonitoringReady).Message
	}).ShouldNot(ContainSubstring("PrometheusRule"))

	// Turning them on again brings it back; turning monitoring off removes it.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Monitoring.Alerts.Enabled = ptr.To(true) })
	g.Eventually(rules).Should(HaveLen(7))
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Monitoring.Enabled = false })
	g.Eventually(func() error {
		return k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), rule)
	}).Should(MatchError(ContainSubstring("not found")))
}
