package resources

import (
	"fmt"
	"maps"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

const (
	// DefaultRunbookBaseURL is where the runbooks of the alerts are unless
	// the operator's --runbook-base-url flag says otherwise: each alert's
	// runbook_url is it followed by #<alert name in lower case>.
	DefaultRunbookBaseURL = "https://github.com/example/memcached-operator/blob/main/docs/monitoring.md"
	// MemcachedLabel is the label that the ServiceMonitor sets on every
	// series scraped for a Memcached, and that the operator's own gauges
	// carry: its value is the Memcached's name. With the namespace, it
	// picks the series of one Memcached.
	MemcachedLabel = "memcached"
	// RestartWindowSeconds is how recently a memcached server must have
	// started for MemcachedRestarted to fire.
	RestartWindowSeconds = 180
	// ProxiesDownFor is how long no proxy must be ready for
	// MemcachedProxiesDown to fire: short, as every client of the Service
	// fails meanwhile, and long enough for a rollout or a node drain, which
	// keep a proxy ready.
	ProxiesDownFor = "5m"
	// alertRuleGroup names the group of rules in the PrometheusRule.
	alertRuleGroup = "memcached"
)

// Severities of the alerts.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"
)

// PrometheusRuleGVK is the kind of the PrometheusRule of prometheus-operator.
var PrometheusRuleGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}

// Names of the alerts.
const (
	AlertDown                       = "MemcachedDown"
	AlertConnectionLimitApproaching = "MemcachedConnectionLimitApproaching"
	AlertOutOfMemoryErrors          = "MemcachedOutOfMemoryErrors"
	AlertEvictions                  = "MemcachedEvictions"
	AlertRestarted                  = "MemcachedRestarted"
	AlertRingDegraded               = "MemcachedRingDegraded"
	AlertProxiesDown                = "MemcachedProxiesDown"
)

// AlertRule is one alerting rule, as Prometheus' rule files and
// prometheus-operator's PrometheusRule hold it.
type AlertRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// AlertRuleGroup is a named group of alerting rules.
type AlertRuleGroup struct {
	Name  string      `json:"name"`
	Rules []AlertRule `json:"rules"`
}

// AlertRuleGroups returns the groups of alert rules of mc, nil when it asks
// for none. Every expression selects the series of mc only, by namespace and
// MemcachedLabel. runbookBaseURL is DefaultRunbookBaseURL when empty.
func AlertRuleGroups(mc *cachev1alpha1.Memcached, runbookBaseURL string) []AlertRuleGroup {
	a := mc.Spec.GetAlerts()
	if a == nil {
		return nil
	}
	if runbookBaseURL == "" {
		runbookBaseURL = DefaultRunbookBaseURL
	}
	sel := fmt.Sprintf(`namespace=%q,%s=%q`, mc.Namespace, MemcachedLabel, mc.Name)
	who := fmt.Sprintf("Memcached %s/%s", mc.Namespace, mc.Name)
	server := who + ", server {{ $labels.instance }},"
	rule := func(name, severity, expr, forDuration, summary, description string) AlertRule {
		labels := maps.Clone(a.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels["severity"] = severity
		return AlertRule{Alert: name, Expr: expr, For: forDuration, Labels: labels, Annotations: map[string]string{
			"summary":     summary,
			"description": description,
			"runbook_url": runbookBaseURL + "#" + strings.ToLower(name),
		}}
	}
	connections := func(severity string, percent int32) AlertRule {
		return rule(AlertConnectionLimitApproaching, severity,
			fmt.Sprintf(`memcached_current_connections{%s} / memcached_max_connections{%s} * 100 > %d`, sel, sel, percent),
			a.For, fmt.Sprintf("Memcached is using more than %d%% of its connection limit.", percent),
			fmt.Sprintf("%s uses {{ printf \"%%.0f\" $value }}%% of its connection limit (more than %d%%).", server, percent))
	}
	rules := []AlertRule{
		rule(AlertDown, SeverityCritical, fmt.Sprintf(`memcached_up{%s} == 0`, sel), a.For,
			"Memcached is down.",
			server+" cannot be reached by its exporter."),
		connections(SeverityWarning, a.ConnectionsWarningPercent),
		connections(SeverityCritical, a.ConnectionsCriticalPercent),
		rule(AlertOutOfMemoryErrors, SeverityWarning,
			fmt.Sprintf(`sum without (slab) (rate(memcached_slab_items_outofmemory_total{%s}[5m])) > 0`, sel), a.For,
			"Memcached fails to store items for lack of memory.",
			server+" fails to store {{ printf \"%.2f\" $value }} items per second for lack of memory."),
		rule(AlertEvictions, SeverityWarning,
			fmt.Sprintf(`rate(memcached_items_evicted_total{%s}[5m]) > %d`, sel, a.EvictionsPerSecond), a.For,
			fmt.Sprintf("Memcached evicts more than %d items per second.", a.EvictionsPerSecond),
			server+fmt.Sprintf(" evicts {{ printf \"%%.1f\" $value }} items per second (more than %d) to make room for new ones.", a.EvictionsPerSecond)),
		rule(AlertRestarted, SeverityInfo,
			fmt.Sprintf(`memcached_uptime_seconds{%s} < %d`, sel, RestartWindowSeconds), "",
			"Memcached has restarted recently.",
			server+fmt.Sprintf(" started less than %d seconds ago, with an empty cache.", RestartWindowSeconds)),
		rule(AlertRingDegraded, SeverityWarning,
			fmt.Sprintf(`max by (namespace, %s) (memcached_operator_memcached_ready_servers{%s}) < max by (namespace, %s) (memcached_operator_memcached_desired_servers{%s})`,
				MemcachedLabel, sel, MemcachedLabel, sel), a.RingDegradedFor,
			"Memcached has fewer ready servers than its size.",
			who+" has {{ $value }} ready servers, fewer than its size, as the operator reports."),
	}
	if mc.Spec.ProxyEnabled() {
		rules = append(rules, rule(AlertProxiesDown, SeverityCritical,
			fmt.Sprintf(`max by (namespace, %s) (memcached_operator_memcached_ready_proxies{%s}) == 0`, MemcachedLabel, sel), ProxiesDownFor,
			"No proxy of Memcached is ready.",
			who+" has no ready proxy: clients of its Service "+mc.Name+" cannot reach the cache, as the operator reports."))
	}
	return []AlertRuleGroup{{Name: alertRuleGroup, Rules: rules}}
}

// prometheusRuleSpec is the spec of a PrometheusRule.
type prometheusRuleSpec struct {
	Groups []AlertRuleGroup `json:"groups"`
}

// prometheusRule returns the PrometheusRule holding the alert rules of mc,
// nil when it asks for none. It is unstructured, like the ServiceMonitor.
func prometheusRule(mc *cachev1alpha1.Memcached, runbookBaseURL string) *unstructured.Unstructured {
	groups := AlertRuleGroups(mc, runbookBaseURL)
	if groups == nil {
		return nil
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&prometheusRuleSpec{Groups: groups})
	if err != nil {
		panic(fmt.Sprintf("failed to convert the PrometheusRule's spec: %v", err)) // a programming error
	}
	labels := maps.Clone(mc.Spec.Monitoring.ServiceMonitorLabels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, Labels(mc))
	pr := &unstructured.Unstructured{}
	pr.SetGroupVersionKind(PrometheusRuleGVK)
	pr.SetName(mc.Name)
	pr.SetNamespace(mc.Namespace)
	pr.SetLabels(labels)
	pr.SetOwnerReferences([]metav1.OwnerReference{*convert[metav1.OwnerReference](ownerReference(mc))})
	if err := unstructured.SetNestedField(pr.Object, content, "spec"); err != nil {
		panic(fmt.Sprintf("failed to set the PrometheusRule's spec: %v", err)) // a programming error
	}
	return pr
}
