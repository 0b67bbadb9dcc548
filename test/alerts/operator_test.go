package alerts

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"example.com/memcached-operator/internal/resources"
)

// The alerts of the operator itself, in the PrometheusRule of the kustomize
// component, from which hack/sync-chart.sh copies the rule groups into the
// Helm chart.
const (
	operatorRulesFile = "../../config/components/operator-alerts/prometheusrule.yaml"
	monitoringDoc     = "../../docs/monitoring.md"
	chartDir          = "../../charts/memcached-operator"

	alertOperatorDown            = "MemcachedOperatorDown"
	alertOperatorNoLeader        = "MemcachedOperatorNoLeader"
	alertOperatorReconcileErrors = "MemcachedOperatorReconcileErrors"
	alertOperatorWorkQueueStuck  = "MemcachedOperatorWorkQueueStuck"

	// operatorJob and operatorNamespace are the job and namespace labels
	// that config/prometheus's ServiceMonitor gives the scrape of
	// config/default's metrics Service.
	operatorJob       = "memcached-operator-controller-manager-metrics-service"
	operatorNamespace = "memcached-operator-system"
)

// operatorRule is what the tests read of a rule.
type operatorRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// prometheusRuleFile is a PrometheusRule, its groups kept as they are.
type prometheusRuleFile struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Groups []any `json:"groups"`
	} `json:"spec"`
}

// operatorRules reads the component's PrometheusRule: its groups as they
// are, and its rules.
func operatorRules(t *testing.T) ([]any, []operatorRule) {
	t.Helper()
	data, err := os.ReadFile(operatorRulesFile)
	if err != nil {
		t.Fatalf("failed to read the operator's alert rules: %v", err)
	}
	var file prometheusRuleFile
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		t.Fatalf("failed to decode %s: %v", operatorRulesFile, err)
	}
	if file.APIVersion != "monitoring.coreos.com/v1" || file.Kind != "PrometheusRule" {
		t.Fatalf("%s holds a %s %s, not a monitoring.coreos.com/v1 PrometheusRule", operatorRulesFile, file.APIVersion, file.Kind)
	}
	var typed struct {
		Spec struct {
			Groups []struct {
				Rules []operatorRule `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &typed); err != nil {
		t.Fatalf("failed to decode the rules of %s: %v", operatorRulesFile, err)
	}
	var rules []operatorRule
	for _, g := range typed.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", operatorRulesFile)
	}
	return file.Spec.Groups, rules
}

// scrapeSeries are the labels prometheus-operator gives a series of the
// scrape of the pod of a metrics Service job in namespace.
func scrapeSeries(metric, namespace, job, pod, extra string) string {
	return fmt.Sprintf(`%s{namespace=%q,job=%q,service=%q,endpoint="https",pod=%q,container="manager",instance="10.1.0.%d:8443"%s}`,
		metric, namespace, job, job, pod, len(pod), extra)
}

// ours is a series of the operator's replica pod, as config/default installs
// it and config/prometheus scrapes it.
func ours(metric, pod, extra string) string {
	return scrapeSeries(metric, operatorNamespace, operatorJob, "memcached-operator-controller-manager-"+pod, extra)
}

// foreignOperators adds the same series, failing, of another
// controller-runtime operator in the operator's namespace, and of a second
// install of this operator in another namespace: the rules must not see them.
func foreignOperators(in []inputSeries, failing func(series func(metric, extra string) string) []inputSeries) []inputSeries {
	in = append(in, failing(func(metric, extra string) string {
		return scrapeSeries(metric, operatorNamespace, "other-operator-metrics-service", "other-operator-7d9f", extra)
	})...)
	return append(in, failing(func(metric, extra string) string {
		return scrapeSeries(metric, "staging", operatorJob, "memcached-operator-controller-manager-5c8b", extra)
	})...)
}

// operatorAlert is what an alert of the operator carries.
func operatorAlert(name, severity, summary, description string) expAlert {
	return expAlert{
		ExpLabels: map[string]string{"alertname": name, "severity": severity, "namespace": operatorNamespace, "job": operatorJob},
		ExpAnnotations: map[string]string{"summary": summary, "description": description,
			"runbook_url": resources.DefaultRunbookBaseURL + "#" + strings.ToLower(name)},
	}
}

const theOperator = "The memcached operator (" + operatorNamespace + "/" + operatorJob + ")"

// operatorCases returns, for each alert of the operator, test groups in
// which it fires and test groups in which it stays quiet.
func operatorCases() []testGroup {
	group := func(name, evalTime, alertname string, in []inputSeries, exp ...expAlert) testGroup {
		return testGroup{Name: alertname + " " + name, Interval: "1m", InputSeries: in,
			AlertTests: []alertTest{{EvalTime: evalTime, Alertname: alertname, ExpAlerts: exp}}}
	}
	up := func(values ...string) []inputSeries {
		in := make([]inputSeries, 0, len(values))
		for i, v := range values {
			in = append(in, inputSeries{ours("up", fmt.Sprintf("pod%d", i), ""), v})
		}
		return in
	}
	leader := func(values ...string) []inputSeries {
		in := up("1x10", "1x10")
		for i, v := range values {
			in = append(in, inputSeries{ours("leader_election_master_status", fmt.Sprintf("pod%d", i),
				`,name="memcached-operator.cache.example.com"`), v})
		}
		return in
	}
	foreignUp := func(v string) func(series func(metric, extra string) string) []inputSeries {
		return func(series func(metric, extra string) string) []inputSeries {
			return []inputSeries{{series("up", ""), v}}
		}
	}
	foreignNoLeader := func(series func(metric, extra string) string) []inputSeries {
		return []inputSeries{{series("up", ""), "1x10"},
			{series("leader_election_master_status", `,name="other"`), "0x10"}}
	}
	reconcileErrors := func(series func(metric, extra string) string, all, terminal string) []inputSeries {
		return []inputSeries{{series("controller_runtime_reconcile_errors_total", `,controller="memcached"`), all},
			{series("controller_runtime_terminal_reconcile_errors_total", `,controller="memcached"`), terminal}}
	}
	ourErrors := func(all, terminal string) []inputSeries {
		return reconcileErrors(func(metric, extra string) string { return ours(metric, "pod0", extra) }, all, terminal)
	}
	queue := func(series func(metric, extra string) string, longest, depth string) []inputSeries {
		queueLabels := `,name="memcached",controller="memcached"`
		return []inputSeries{{series("workqueue_longest_running_processor_seconds", queueLabels), longest},
			{series("workqueue_depth", queueLabels+`,priority=""`), depth},
			{series("workqueue_depth", queueLabels+`,priority="-100"`), "0x30"}}
	}
	ourQueue := func(longest, depth string) []inputSeries {
		return queue(func(metric, extra string) string { return ours(metric, "pod0", extra) }, longest, depth)
	}

	down := operatorAlert(alertOperatorDown, "critical", "The memcached operator is down.",
		"Prometheus has not scraped any replica of the memcached operator ("+operatorNamespace+"/"+operatorJob+
			") for 15 minutes: no Memcached is reconciled.")
	noLeader := operatorAlert(alertOperatorNoLeader, "critical", "No replica of the memcached operator is the leader.",
		theOperator+" answers its scrapes, but none of its replicas has held the leader election Lease for 5 minutes: "+
			"no Memcached is reconciled.")
	failing := operatorAlert(alertOperatorReconcileErrors, "warning",
		"The memcached operator keeps failing to reconcile Memcacheds.",
		theOperator+" has failed, and retried, reconciles of Memcacheds for 15 minutes without a pause: "+
			"0.05 a second over the last 5 minutes.")
	stuck := operatorAlert(alertOperatorWorkQueueStuck, "warning", "The work queue of the memcached operator is stuck.",
		"For 15 minutes, a reconcile of the memcached operator ("+operatorNamespace+"/"+operatorJob+") has been running "+
			"for more than 5 minutes while Memcacheds wait in its work queue; the longest has been running for 25m 0s.")

	return []testGroup{
		group("fires when every replica's scrape fails", "16m", alertOperatorDown, up("0x20", "0x20"), down),
		group("fires when Prometheus has no target of the operator", "16m", alertOperatorDown,
			foreignOperators(nil, foreignUp("1x20")), down),
		group("stays quiet while a replica answers, or for less than 15 minutes", "16m", alertOperatorDown,
			foreignOperators(up("1x5 0x15", "1x10 0x10"), foreignUp("0x20"))),

		group("fires when no replica is the leader", "6m", alertOperatorNoLeader, leader("0x10", "0x10"), noLeader),
		group("fires when the replicas report no leader election at all", "6m", alertOperatorNoLeader, leader(), noLeader),
		group("stays quiet while a replica is the leader", "6m", alertOperatorNoLeader,
			foreignOperators(leader("0x2 1x8", "1x2 0x8"), foreignNoLeader)),
		// MemcachedOperatorDown is the alert then.
		group("stays quiet when the operator is down", "6m", alertOperatorNoLeader, up("0x10")),

		// 4 errors a minute, 1 of them terminal, are 0.05 retried errors a second.
		group("fires", "20m", alertOperatorReconcileErrors, ourErrors("0+4x30", "0+1x30"), failing),
		group("stays quiet when the errors stop", "20m", alertOperatorReconcileErrors,
			foreignOperators(ourErrors("0+3x10 30x20", "0x30"), func(series func(metric, extra string) string) []inputSeries {
				return reconcileErrors(series, "0+3x30", "0x30")
			})),
		// A spec no retry can fix: the Memcached's Degraded condition says so.
		group("stays quiet when every error is terminal", "20m", alertOperatorReconcileErrors,
			ourErrors("0+3x30", "0+3x30")),

		// The longest reconcile grows a minute a minute: above 5 minutes from 6m.
		group("fires", "25m", alertOperatorWorkQueueStuck, ourQueue("0+60x30", "2x30"), stuck),
		group("stays quiet while nothing waits", "25m", alertOperatorWorkQueueStuck, ourQueue("0+60x30", "0x30")),
		group("stays quiet while reconciles are short", "25m", alertOperatorWorkQueueStuck,
			foreignOperators(ourQueue("0.5x30", "40x30"), func(series func(metric, extra string) string) []inputSeries {
				return queue(series, "0+60x30", "2x30")
			})),
	}
}

func TestOperatorAlertRulesPassPromtool(t *testing.T) {
	bin := promtool(t)
	groups, _ := operatorRules(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "operator-rules.json")
	writeJSON(t, rules, map[string]any{"groups": groups})
	if out, err := exec.Command(bin, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", operatorRulesFile, err, out)
	}

	cases := operatorCases()
	tests := filepath.Join(dir, "operator-tests.json")
	writeJSON(t, tests, map[string]any{"rule_files": []string{rules}, "evaluation_interval": "1m", "tests": cases})
	out, err := exec.Command(bin, "test", "rules", tests).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("promtool test rules: %d test groups passed\n%s", len(cases), out)
}

// TestEveryOperatorAlertHasAFiringAndAQuietTest keeps operatorCases in step
// with the rules.
func TestEveryOperatorAlertHasAFiringAndAQuietTest(t *testing.T) {
	fired, quiet := map[string]bool{}, map[string]bool{}
	for _, g := range operatorCases() {
		for _, at := range g.AlertTests {
			if len(at.ExpAlerts) > 0 {
				fired[at.Alertname] = true
			} else {
				quiet[at.Alertname] = true
			}
		}
	}
	_, rules := operatorRules(t)
	for _, r := range rules {
		if !fired[r.Alert] || !quiet[r.Alert] {
			t.Errorf("%s has no test in which it fires and one in which it stays quiet", r.Alert)
		}
	}
}

// TestOperatorAlertsLinkTheirRunbooks checks that each alert has a severity,
// a summary and a description, and that its runbook_url is the operator's
// default runbook base URL followed by the anchor of a section of
// docs/monitoring.md named after it, as for the Memcacheds' alerts.
func TestOperatorAlertsLinkTheirRunbooks(t *testing.T) {
	doc, err := os.ReadFile(monitoringDoc)
	if err != nil {
		t.Fatalf("failed to read %s: %v", monitoringDoc, err)
	}
	_, rules := operatorRules(t)
	for _, r := range rules {
		if !regexp.MustCompile(`^(critical|warning|info)$`).MatchString(r.Labels["severity"]) {
			t.Errorf("%s: severity %q is not critical, warning or info", r.Alert, r.Labels["severity"])
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s has no summary or no description", r.Alert)
		}
		if want := resources.DefaultRunbookBaseURL + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url is %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !regexp.MustCompile(`(?m)^#+ ` + regexp.QuoteMeta(r.Alert) + `$`).Match(doc) {
			t.Errorf("%s has no section %q in %s for its runbook_url", r.Alert, "### "+r.Alert, monitoringDoc)
		}
	}
}

// TestChartRendersTheOperatorAlerts checks that the chart's PrometheusRule
// (prometheusRule.enabled) holds the component's rule groups: the same, for
// the release and namespace that give config/default's names; for another,
// its own job and namespace in the selectors, and the runbook links of
// runbookBaseURL; and no MemcachedOperatorNoLeader without leader election.
// It needs HELM_BINARY: make test sets it.
func TestChartRendersTheOperatorAlerts(t *testing.T) {
	helm := os.Getenv("HELM_BINARY")
	if helm == "" {
		t.Fatal("HELM_BINARY is not set: run this test with 'make test', which builds Helm")
	}
	render := func(release, namespace string, set ...string) []any {
		t.Helper()
		args := make([]string, 0, 9+2*len(set))
		args = append(args, "template", release, chartDir, "--namespace", namespace,
			"--show-only", "templates/prometheus/prometheus-rule.yaml", "--set", "prometheusRule.enabled=true")
		for _, s := range set {
			args = append(args, "--set", s)
		}
		out, err := exec.Command(helm, args...).Output()
		if err != nil {
			t.Fatalf("helm %s: %v", strings.Join(args, " "), errorWithStderr(err))
		}
		var file prometheusRuleFile
		if err := yaml.Unmarshal(out, &file); err != nil {
			t.Fatalf("failed to decode the chart's PrometheusRule: %v\n%s", err, out)
		}
		return file.Spec.Groups
	}
	component, rules := operatorRules(t)

	if chart := render("memcached-operator", operatorNamespace); !reflect.DeepEqual(chart, component) {
		t.Errorf("the chart's rule groups differ from %s: run hack/sync-chart.sh (make manifests)\nchart: %v\ncomponent: %v",
			operatorRulesFile, chart, component)
	}

	other, err := yaml.Marshal(render("shop", "monitoring", "leaderElection.enabled=false", "runbookBaseURL=https://wiki.example/memcached"))
	if err != nil {
		t.Fatalf("failed to encode the chart's rule groups: %v", err)
	}
	for _, r := range rules {
		shown := strings.Contains(string(other), "alert: "+r.Alert+"\n")
		if want := r.Alert != alertOperatorNoLeader; shown != want {
			t.Errorf("with leaderElection.enabled=false, the chart has %s: %t, want %t", r.Alert, shown, want)
		}
	}
	for _, want := range []string{`job="shop-memcached-operator-controller-manager-metrics-service"`, `namespace="monitoring"`,
		"runbook_url: https://wiki.example/memcached#memcachedoperatordown"} {
		if !strings.Contains(string(other), want) {
			t.Errorf("the chart's rules of release shop in namespace monitoring have no %s:\n%s", want, other)
		}
	}
	for _, gone := range []string{fmt.Sprintf("job=%q", operatorJob), fmt.Sprintf("namespace=%q", operatorNamespace),
		resources.DefaultRunbookBaseURL} {
		if strings.Contains(string(other), gone) {
			t.Errorf("the chart's rules of release shop in namespace monitoring still have %s:\n%s", gone, other)
		}
	}
}

// errorWithStderr adds the standard error of a failed command to its error.
func errorWithStderr(err error) error {
	if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
		return fmt.Errorf("%w\n%s", err, exitErr.Stderr)
	}
	return err
}
