package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

func TestMonitoringWithoutTheServiceMonitorAPIRunsTheExporterAndSaysSo(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	memcachedPods := deploymentOf(t, mc)

	// Both monitoring settings that used to be refused together.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true, Interval: "30s"}
	})
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		c := meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionMonitoringReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(status.ReasonServiceMonitorAPIMissing))
		g.Expect(c.Message).To(ContainSubstring("no monitoring.coreos.com/v1 ServiceMonitor API"))
		g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	}).Should(Succeed())
	// The API is not looked up again for each reconcile.
	expectNoOpReconcile(t, mc)

	// The exporter runs beside the memcached pods, which monitoring leaves
	// alone.
	exporterKey := client.ObjectKey{Namespace: ns, Name: "cache-exporter"}
	exporter := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(t.Context(), exporterKey, exporter)).To(Succeed())
	g.Expect(metav1.IsControlledBy(exporter, mc)).To(BeTrue())
	g.Expect(exporter.Spec.Template.Spec.Containers[0].Image).To(Equal(resources.DefaultExporterImage))
	g.Expect(k8sClient.Get(t.Context(), exporterKey, &corev1.Service{})).To(Succeed())
	expectUnchanged(t, memcachedPods)

	// Turning it off removes the exporter and the condition.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Monitoring.Enabled = false })
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		g.Expect(meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionMonitoringReady)).To(BeNil())
	}).Should(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), exporterKey, &appsv1.Deployment{}))
	}).
		Should(BeTrue())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(t.Context(), exporterKey, &corev1.Service{})) }).
		Should(BeTrue())
	expectUnchanged(t, memcachedPods)
}
