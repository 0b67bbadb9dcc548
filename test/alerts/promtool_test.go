// Package alerts checks with promtool, built from Prometheus' Go module, the
// alert rules the operator writes, and those of the operator itself
// (config/components/operator-alerts, operator_test.go): the rules load, and
// each alert fires on the series it is about, and only on them.
package alerts

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

const runbooks = "https://runbooks.example/memcached.md"

// sample is the Memcached whose rules are tested: shop/cache, with proxies,
// a routing label, the default thresholds and a shorter ringDegradedFor.
func sample() *cachev1alpha1.Memcached {
	return &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cache", UID: types.UID("cache-uid")},
		Spec: cachev1alpha1.MemcachedSpec{Size: 3, Workload: cachev1alpha1.WorkloadStatefulSet,
			Proxy: &cachev1alpha1.ProxySpec{Enabled: true}, Monitoring: &cachev1alpha1.MonitoringSpec{
				Enabled: true,
				Alerts: &cachev1alpha1.AlertsSpec{Enabled: ptr.To(true), RingDegradedFor: "10m",
					Labels: map[string]string{"team": "cache"}},
			}},
	}
}

// ruleGroups returns the groups of the PrometheusRule that Build applies for mc.
func ruleGroups(t *testing.T, mc *cachev1alpha1.Memcached) []any {
	t.Helper()
	for _, o := range resources.Build(mc, resources.Inputs{RunbookBaseURL: runbooks}).Objects {
		if o.Kind == resources.PrometheusRuleKind {
			groups, found, err := unstructured.NestedSlice(o.Object, "spec", "groups")
			if err != nil || !found {
				t.Fatalf("the PrometheusRule has no spec.groups: %v", err)
			}
			return groups
		}
	}
	t.Fatal("Build applies no PrometheusRule")
	return nil
}

// promtool returns the path of promtool, which make test builds and names
// in PROMTOOL.
func promtool(t *testing.T) string {
	t.Helper()
	path := os.Getenv("PROMTOOL")
	if path == "" {
		t.Fatal("PROMTOOL is not set: run `make test`, which builds promtool and sets it")
	}
	return path
}

// series are the labels of a scraped memcached server of the Memcached
// namespace/name, as its ServiceMonitor sets them.
func series(metric, namespace, name string, extra string) string {
	return fmt.Sprintf(`%s{namespace=%q,memcached=%q,instance="10.0.0.1:11211",pod=%q,job=%q%s}`,
		metric, namespace, name, name+"-0", name+"-headless", extra)
}

// operatorSeries are the labels of a gauge of the operator about the
// Memcached namespace/name, scraped with honorLabels.
func operatorSeries(metric, namespace, name string) string {
	return fmt.Sprintf(`%s{namespace=%q,memcached=%q,instance="10.1.0.5:8443",job="memcached-operator-controller-manager-metrics-service"}`,
		metric, namespace, name)
}

type inputSeries struct {
	Series string `json:"series"`
	Values string `json:"values"`
}

type expAlert struct {
	ExpLabels      map[string]string `json:"exp_labels"`
	ExpAnnotations map[string]string `json:"exp_annotations"`
}

type alertTest struct {
	EvalTime  string     `json:"eval_time"`
	Alertname string     `json:"alertname"`
	ExpAlerts []expAlert `json:"exp_alerts"`
}

type testGroup struct {
	Name        string        `json:"name"`
	Interval    string        `json:"interval"`
	InputSeries []inputSeries `json:"input_series"`
	AlertTests  []alertTest   `json:"alert_rule_test"`
}

// withForeign adds the same series, failing, of a Memcached of the same
// name in another namespace and of another Memcached in the same
// namespace: the rules of shop/cache must not see them.
func withForeign(ours []inputSeries, failing func(namespace, name string) []inputSeries) []inputSeries {
	ours = append(ours, failing("other", "cache")...)
	return append(ours, failing("shop", "sessions")...)
}

// alert is what an alert of shop/cache's server 10.0.0.1:11211 carries.
func alert(name, severity, summary, description string) expAlert {
	return expAlert{
		ExpLabels: map[string]string{"alertname": name, "severity": severity, "team": "cache", "namespace": "shop", "memcached": "cache",
			"instance": "10.0.0.1:11211", "pod": "cache-0", "job": "cache-headless"},
		ExpAnnotations: map[string]string{"summary": summary, "description": description,
			"runbook_url": runbooks + "#" + strings.ToLower(name)},
	}
}

const server = "Memcached shop/cache, server 10.0.0.1:11211,"

// cases returns, for each alert, a test group in which it fires and one in
// which it stays quiet.
func cases() []testGroup {
	quiet := func(name, evalTime string, in []inputSeries) testGroup {
		return testGroup{Name: name + " stays quiet", Interval: "1m", InputSeries: in,
			AlertTests: []alertTest{{EvalTime: evalTime, Alertname: name}}}
	}
	fires := func(name, evalTime string, in []inputSeries, exp ...expAlert) testGroup {
		return testGroup{Name: name + " fires", Interval: "1m", InputSeries: in,
			AlertTests: []alertTest{{EvalTime: evalTime, Alertname: exp[0].ExpLabels["alertname"], ExpAlerts: exp}}}
	}
	up := func(v string) func(ns, name string) []inputSeries {
		return func(ns, name string) []inputSeries { return []inputSeries{{series("memcached_up", ns, name, ""), v}} }
	}
	connections := func(current string) func(ns, name string) []inputSeries {
		return func(ns, name string) []inputSeries {
			return []inputSeries{{series("memcached_current_connections", ns, name, ""), current + "x30"},
				{series("memcached_max_connections", ns, name, ""), "1000x30"}}
		}
	}
	oom := func(v string) func(ns, name string) []inputSeries {
		return func(ns, name string) []inputSeries {
			return []inputSeries{{series("memcached_slab_items_outofmemory_total", ns, name, `,slab="1"`), v},
				{series("memcached_slab_items_outofmemory_total", ns, name, `,slab="2"`), "0x30"}}
		}
	}
	evicted := func(v string) func(ns, name string) []inputSeries {
		return func(ns, name string) []inputSeries {
			return []inputSeries{{series("memcached_items_evicted_total", ns, name, ""), v}}
		}
	}
	uptime := func(v string) func(ns, name string) []inputSeries {
		return func(ns, name string) []inputSeries {
			return []inputSeries{{series("memcached_uptime_seconds", ns, name, ""), v}}
		}
	}
	ring := func(ready string) func(ns, name string) []inputSeries {
		return func(ns, name string) []inputSeries {
			return []inputSeries{{operatorSeries("memcached_operator_memcached_ready_servers", ns, name), ready + "x30"},
				{operatorSeries("memcached_operator_memcached_desired_servers", ns, name), "3x30"}}
		}
	}
	proxies := func(ready string) func(ns, name string) []inputSeries {
		return func(ns, name string) []inputSeries {
			return []inputSeries{{operatorSeries("memcached_operator_memcached_ready_proxies", ns, name), ready},
				{operatorSeries("memcached_operator_memcached_desired_proxies", ns, name), "2x30"}}
		}
	}
	connectionsAlert := func(severity string, percent int, value string) expAlert {
		return alert(resources.AlertConnectionLimitApproaching, severity,
			fmt.Sprintf("Memcached is using more than %d%% of its connection limit.", percent),
			fmt.Sprintf("%s uses %s%% of its connection limit (more than %d%%).", server, value, percent))
	}
	ringAlert := alert(resources.AlertRingDegraded, "warning", "Memcached has fewer ready servers than its size.",
		"Memcached shop/cache has 2 ready servers, fewer than its size, as the operator reports.")
	ringAlert.ExpLabels = map[string]string{"alertname": resources.AlertRingDegraded, "severity": "warning", "team": "cache", "namespace": "shop", "memcached": "cache"}

	proxiesAlert := alert(resources.AlertProxiesDown, "critical", "No proxy of Memcached is ready.",
		"Memcached shop/cache has no ready proxy: clients of its Service cache cannot reach the cache, as the operator reports.")
	proxiesAlert.ExpLabels = map[string]string{"alertname": resources.AlertProxiesDown, "severity": "critical", "team": "cache", "namespace": "shop", "memcached": "cache"}

	return []testGroup{
		fires(resources.AlertProxiesDown, "6m", proxies("0x30")("shop", "cache"), proxiesAlert),
		// One proxy of two ready serves every client; none for less than
		// 5 minutes is not yet an alert.
		quiet(resources.AlertProxiesDown, "16m", withForeign(proxies("1x30")("shop", "cache"), proxies("0x30"))),
		quiet(resources.AlertProxiesDown, "16m", proxies("2x12 0x18")("shop", "cache")),

		fires(resources.AlertDown, "16m", up("0x20")("shop", "cache"),
			alert(resources.AlertDown, "critical", "Memcached is down.", server+" cannot be reached by its exporter.")),
		// Down for less than 15 minutes is not yet an alert.
		quiet(resources.AlertDown, "16m", withForeign(up("1x5 0x10")("shop", "cache"), up("0x20"))),

		fires(resources.AlertConnectionLimitApproaching+" (warning)", "16m", connections("850")("shop", "cache"),
			connectionsAlert("warning", 80, "85")),
		fires(resources.AlertConnectionLimitApproaching+" (critical)", "16m", connections("970")("shop", "cache"),
			connectionsAlert("warning", 80, "97"), connectionsAlert("critical", 95, "97")),
		quiet(resources.AlertConnectionLimitApproaching, "16m", withForeign(connections("700")("shop", "cache"), connections("990"))),

		fires(resources.AlertOutOfMemoryErrors, "20m", oom("0+6x30")("shop", "cache"),
			alert(resources.AlertOutOfMemoryErrors, "warning", "Memcached fails to store items for lack of memory.",
				server+" fails to store 0.10 items per second for lack of memory.")),
		quiet(resources.AlertOutOfMemoryErrors, "20m", withForeign(oom("5x30")("shop", "cache"), oom("0+6x30"))),

		// 900 a minute is 15 a second, above the default 10.
		fires(resources.AlertEvictions, "20m", evicted("0+900x30")("shop", "cache"),
			alert(resources.AlertEvictions, "warning", "Memcached evicts more than 10 items per second.",
				server+" evicts 15.0 items per second (more than 10) to make room for new ones.")),
		quiet(resources.AlertEvictions, "20m", withForeign(evicted("0+300x30")("shop", "cache"), evicted("0+900x30"))),

		fires(resources.AlertRestarted, "1m", uptime("60+60x10")("shop", "cache"),
			alert(resources.AlertRestarted, "info", "Memcached has restarted recently.",
				server+" started less than 180 seconds ago, with an empty cache.")),
		quiet(resources.AlertRestarted, "1m", withForeign(uptime("3600+60x10")("shop", "cache"), uptime("60+60x10"))),

		fires(resources.AlertRingDegraded, "11m", ring("2")("shop", "cache"), ringAlert),
		quiet(resources.AlertRingDegraded, "11m", withForeign(ring("3")("shop", "cache"), ring("0"))),
	}
}

func TestAlertRulesPassPromtool(t *testing.T) {
	bin := promtool(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.json")
	writeJSON(t, rules, map[string]any{"groups": ruleGroups(t, sample())})
	if out, err := exec.Command(bin, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}

	groups := cases()
	tests := filepath.Join(dir, "tests.json")
	writeJSON(t, tests, map[string]any{"rule_files": []string{rules}, "evaluation_interval": "1m", "tests": groups})
	out, err := exec.Command(bin, "test", "rules", tests).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("promtool test rules: %d test groups passed\n%s", len(groups), out)
}

// TestEveryAlertHasAFiringAndAQuietTest keeps cases in step with the rules.
func TestEveryAlertHasAFiringAndAQuietTest(t *testing.T) {
	fired, quiet := map[string]bool{}, map[string]bool{}
	for _, g := range cases() {
		for _, at := range g.AlertTests {
			if len(at.ExpAlerts) > 0 {
				fired[at.Alertname] = true
			} else {
				quiet[at.Alertname] = true
			}
		}
	}
	for _, g := range resources.AlertRuleGroups(sample(), runbooks) {
		for _, r := range g.Rules {
			if !fired[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s has no test in which it fires and one in which it stays quiet", r.Alert)
			}
		}
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("failed to encode %s: %v", path, err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("failed to write %s: %v", path, err)
	}
}
