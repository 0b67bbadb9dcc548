package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func TestAlertSettingsAreCheckedAtAdmission(t *testing.T) {
	ns := newNamespace(t)
	alerts := func(a cachev1alpha1.AlertsSpec) *cachev1alpha1.Memcached {
		return &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "cache-"},
			Spec: cachev1alpha1.MemcachedSpec{Size: 1, Monitoring: &cachev1alpha1.MonitoringSpec{Enabled: true, Alerts: &a}}}
	}
	refused := []struct {
		name    string
		alerts  cachev1alpha1.AlertsSpec
		message string
	}{
		{"warning above critical", cachev1alpha1.AlertsSpec{ConnectionsWarningPercent: 90, ConnectionsCriticalPercent: 85},
			"connectionsWarningPercent must be below connectionsCriticalPercent"},
		{"warning above the default critical", cachev1alpha1.AlertsSpec{ConnectionsWarningPercent: 96},
			"connectionsWarningPercent must be below connectionsCriticalPercent"},
		{"critical above 100", cachev1alpha1.AlertsSpec{ConnectionsCriticalPercent: 101}, "spec.monitoring.alerts.connectionsCriticalPercent"},
		{"negative evictions", cachev1alpha1.AlertsSpec{EvictionsPerSecond: -1}, "spec.monitoring.alerts.evictionsPerSecond"},
		{"duration without a unit", cachev1alpha1.AlertsSpec{For: "15"}, "for must be a duration"},
		{"duration in days", cachev1alpha1.AlertsSpec{RingDegradedFor: "1d"}, "ringDegradedFor must be a duration"},
		{"duration beyond what Prometheus reads", cachev1alpha1.AlertsSpec{For: "99999999999999999h"}, "for must be a duration"},
		{"label value Prometheus reads as a template", cachev1alpha1.AlertsSpec{Labels: map[string]string{"team": "{{ $labels.x"}},
			"label values cannot hold {{"},
		{"label name with a dash", cachev1alpha1.AlertsSpec{Labels: map[string]string{"on-call": "x"}}, "labels must be Prometheus label names"},
		{"label name starting with a digit", cachev1alpha1.AlertsSpec{Labels: map[string]string{"1team": "x"}}, "labels must be Prometheus label names"},
		{"reserved label name", cachev1alpha1.AlertsSpec{Labels: map[string]string{"__name__": "x"}}, "labels must be Prometheus label names"},
		{"severity", cachev1alpha1.AlertsSpec{Labels: map[string]string{"severity": "page"}}, "labels cannot set alertname, severity"},
		{"namespace", cachev1alpha1.AlertsSpec{Labels: map[string]string{"namespace": "x"}}, "labels cannot set alertname, severity"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8sClient.Create(t.Context(), alerts(tt.alerts))
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring(tt.message))
		})
	}

	// What is accepted, with the defaults filled in.
	g := NewWithT(t)
	mc := alerts(cachev1alpha1.AlertsSpec{For: "1h30m", Labels: map[string]string{"team": "cache", "_route": "x"}})
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	a := mc.Spec.Monitoring.Alerts
	g.Expect(*a.Enabled).To(BeTrue())
	g.Expect([]int32{a.ConnectionsWarningPercent, a.ConnectionsCriticalPercent, a.EvictionsPerSecond}).To(Equal([]int32{80, 95, 10}))
	g.Expect([]string{a.For, a.RingDegradedFor}).To(Equal([]string{"1h30m", "15m"}))
}
