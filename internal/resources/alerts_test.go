package resources

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func TestAlertRulesTakeTheSettingsAndSelectTheMemcached(t *testing.T) {
	mc := newMemcached("mc", 3)
	mc.Spec.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true, Alerts: &cachev1alpha1.AlertsSpec{
		ConnectionsWarningPercent: 70, EvictionsPerSecond: 50, For: "5m", Labels: map[string]string{"team": "cache"}}}
	groups := AlertRuleGroups(mc, "")
	if len(groups) != 1 {
		t.Fatalf("%d groups, want 1", len(groups))
	}
	seen := map[string]AlertRule{}
	for _, r := range groups[0].Rules {
		seen[r.Alert+"/"+r.Labels["severity"]] = r
		if !strings.Contains(r.Expr, `namespace="cache",memcached="mc"`) {
			t.Errorf("%s: %q does not select the Memcached's series", r.Alert, r.Expr)
		}
		if r.Labels["team"] != "cache" {
			t.Errorf("%s has labels %v, without the spec's", r.Alert, r.Labels)
		}
		if want := DefaultRunbookBaseURL + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
			t.Errorf("%s has runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !strings.Contains(r.Annotations["description"], "cache/mc") || r.Annotations["summary"] == "" {
			t.Errorf("%s has annotations %v, without a summary and a description naming the Memcached", r.Alert, r.Annotations)
		}
	}
	for key, want := range map[string]string{
		AlertConnectionLimitApproaching + "/warning":  "* 100 > 70",
		AlertConnectionLimitApproaching + "/critical": "* 100 > 95",
		AlertEvictions + "/warning":                   "[5m]) > 50",
	} {
		if !strings.HasSuffix(seen[key].Expr, want) {
			t.Errorf("%s: %q does not end with %q", key, seen[key].Expr, want)
		}
	}
	if seen[AlertDown+"/critical"].For != "5m" || seen[AlertRingDegraded+"/warning"].For != "15m" || seen[AlertRestarted+"/info"].For != "" {
		t.Errorf("the for durations are not 5m, 15m and none: %+v", seen)
	}
	if len(seen) != 7 {
		t.Errorf("%d rules, want 7: %v", len(seen), seen)
	}

	if _, ok := seen[AlertProxiesDown+"/critical"]; ok {
		t.Errorf("a Memcached without proxies has %s", AlertProxiesDown)
	}
	mc.Spec.Workload = cachev1alpha1.WorkloadStatefulSet
	mc.Spec.Proxy = &cachev1alpha1.ProxySpec{Enabled: true}
	proxied := AlertRuleGroups(mc, "")[0].Rules
	if last := proxied[len(proxied)-1]; last.Alert != AlertProxiesDown ||
		!strings.Contains(last.Expr, `memcached_operator_memcached_ready_proxies{namespace="cache",memcached="mc"}`) {
		t.Errorf("with spec.proxy, the last rule is %+v, want %s on the ready proxies", last, AlertProxiesDown)
	}

	mc.Spec.Monitoring.Alerts.Enabled = ptr.To(false)
	if AlertRuleGroups(mc, "") != nil || prometheusRule(mc, "") != nil {
		t.Errorf("alerts turned off still give rules")
	}
}
