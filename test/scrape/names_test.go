// Package scrape checks that every metric name the alerts and the dashboard
// use exists in a real scrape: the names of the memcached exporter in a
// scrape of the real memcached_exporter in front of the real memcached,
// plainly and over TLS with a client certificate, and the operator's own in
// a scrape of the real manager's metrics endpoint.
//
// The names come from the PrometheusRule the operator renders for a
// Memcached with every alert on, from the operator's own alerts
// (config/components/operator-alerts/prometheusrule.yaml) and from the
// Grafana dashboard (config/components/dashboard/memcached-dashboard.json).
package scrape

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// The files of the operator's own alerts and of the dashboard, from this
// package's directory.
var (
	operatorAlertsFile = filepath.Join("..", "..", "config", "components", "operator-alerts", "prometheusrule.yaml")
	dashboardFile      = filepath.Join("..", "..", "config", "components", "dashboard", "memcached-dashboard.json")
)

// origin says where the series of a metric name come from.
type origin int

const (
	// fromExporter: the memcached exporter's scrape of a memcached server.
	fromExporter origin = iota
	// fromOperator: the operator's metrics endpoint.
	fromOperator
	// fromPrometheus: Prometheus itself, such as up and ALERTS.
	fromPrometheus
	// fromRule: a recording rule of one of the sources.
	fromRule
	// unknown: none of the above.
	unknown
)

// prometheusSeries are the series Prometheus makes itself: for each scrape,
// and for the alerts it evaluates.
var prometheusSeries = map[string]bool{
	"up": true, "ALERTS": true, "ALERTS_FOR_STATE": true,
	"scrape_duration_seconds": true, "scrape_samples_scraped": true, "scrape_samples_post_metric_relabeling": true,
	"scrape_series_added": true, "scrape_timeout_seconds": true, "scrape_sample_limit": true,
}

// operatorPrefixes are the prefixes of the metrics the operator serves:
// its own gauges and controller-runtime's and client-go's, the Go runtime's
// and the process'.
var operatorPrefixes = []string{
	"memcached_operator_", "controller_runtime_", "workqueue_", "leader_election_", "rest_client_",
	"certwatcher_", "process_", "go_",
}

// classify returns where the series of the metric name come from; recorded
// are the names recording rules of the sources define.
func classify(name string, recorded map[string]bool) origin {
	switch {
	case prometheusSeries[name]:
		return fromPrometheus
	case recorded[name]:
		return fromRule
	case slices.ContainsFunc(operatorPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }):
		return fromOperator
	case strings.HasPrefix(name, "memcached_"):
		return fromExporter
	default:
		return unknown
	}
}

// source is a place that uses metric names.
type source struct {
	name string
	// exprs are its PromQL expressions.
	exprs []string
	// recorded are the names its recording rules define.
	recorded []string
	// err is why it could not be read.
	err error
}

// usage is what the sources use.
type usage struct {
	sources []source
	// users are, for each metric name, the sources that use it.
	users map[string][]string
	// recorded are the names the sources' recording rules define.
	recorded map[string]bool
	// selectors are the selectors that ask for label values.
	selectors []sourced
	// errs are the sources that could not be read, and the expressions
	// that do not parse.
	errs []error
}

// sourced is a selector of a source.
type sourced struct {
	selector
	source string
}

// names returns the names used whose series come from o, sorted.
func (u *usage) names(o origin) []string {
	var out []string
	for name := range u.users {
		if classify(name, u.recorded) == o {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

var (
	usedOnce sync.Once
	used     *usage
)

// usedNames reads the sources once for the package's tests.
func usedNames() *usage {
	usedOnce.Do(func() {
		used = collect([]source{renderedRules(), operatorAlerts(operatorAlertsFile), dashboard(dashboardFile)})
	})
	return used
}

// collect parses the expressions of sources.
func collect(sources []source) *usage {
	u := &usage{sources: sources, users: map[string][]string{}, recorded: map[string]bool{}}
	for _, s := range sources {
		if s.err != nil {
			u.errs = append(u.errs, fmt.Errorf("%s: %w", s.name, s.err))
			continue
		}
		for _, r := range s.recorded {
			u.recorded[r] = true
		}
		for _, expr := range s.exprs {
			sels, err := selectors(expr)
			if err != nil {
				u.errs = append(u.errs, fmt.Errorf("%s: %w", s.name, err))
				continue
			}
			for _, sel := range sels {
				if !slices.Contains(u.users[sel.name], s.name) {
					u.users[sel.name] = append(u.users[sel.name], s.name)
				}
				if len(sel.labels) > 0 {
					u.selectors = append(u.selectors, sourced{selector: sel, source: s.name})
				}
			}
		}
	}
	return u
}

// promql parses PromQL as Prometheus does by default.
var promql = parser.NewParser(parser.Options{})

// selector is a selector of series of one metric name.
type selector struct {
	name string
	// labels are the label values it asks for with =, but those of
	// uncheckedLabels and of dashboard variables.
	labels map[string]string
}

func (s selector) String() string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(s.labels)) {
		if b.Len() > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%s=%q", name, s.labels[name])
	}
	return s.name + "{" + b.String() + "}"
}

// uncheckedLabels are the labels whose values are not checked: those that
// say whose a series is, set by the scrape (job, instance, pod...) or by the
// operator for each Memcached (namespace, memcached), whose values depend on
// where the sources run, not on the metric; and the buckets and quantiles
// of histograms and summaries.
var uncheckedLabels = map[string]bool{
	"job": true, "instance": true, "namespace": true, "pod": true, "service": true, "endpoint": true,
	"container": true, resources.MemcachedLabel: true, model.BucketLabel: true, model.QuantileLabel: true,
}

// selectors returns the series selectors of expr.
func selectors(expr string) ([]selector, error) {
	parsed, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("failed to parse %q: %w", expr, err)
	}
	var out []selector
	var errs []error
	parser.Inspect(parsed, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		s := selector{name: vs.Name, labels: map[string]string{}}
		for _, m := range vs.LabelMatchers {
			switch {
			case m.Name == model.MetricNameLabel && m.Type != labels.MatchEqual:
				errs = append(errs, fmt.Errorf("%q selects metric names by %s: name each metric", expr, m))
			case m.Name == model.MetricNameLabel:
				s.name = m.Value
			case m.Type == labels.MatchEqual && !uncheckedLabels[m.Name] && !strings.HasPrefix(m.Value, variablePrefix):
				s.labels[m.Name] = m.Value
			}
		}
		if s.name != "" {
			out = append(out, s)
		}
		return nil
	})
	return out, errors.Join(errs...)
}

// metricNames returns the metric names that expr selects, sorted.
func metricNames(expr string) ([]string, error) {
	sels, err := selectors(expr)
	names := map[string]bool{}
	for _, s := range sels {
		names[s.name] = true
	}
	return slices.Sorted(maps.Keys(names)), err
}

// rulesMemcached is a Memcached with monitoring and every alert on: those
// of the proxies too.
func rulesMemcached() *cachev1alpha1.Memcached {
	return &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cache", UID: types.UID("cache-uid")},
		Spec: cachev1alpha1.MemcachedSpec{Size: 3,
			// The proxies need a StatefulSet.
			Workload: cachev1alpha1.WorkloadStatefulSet,
			Proxy:    &cachev1alpha1.ProxySpec{Enabled: true},
			Monitoring: &cachev1alpha1.MonitoringSpec{
				Enabled: true,
				Alerts:  &cachev1alpha1.AlertsSpec{Enabled: ptr.To(true)},
			}},
	}
}

// renderedRules returns the expressions of the PrometheusRule that the
// operator applies for a Memcached with every alert on.
func renderedRules() source {
	s := source{name: "the PrometheusRule of a Memcached"}
	for _, o := range resources.Build(rulesMemcached(), resources.Inputs{}).Objects {
		if o.Kind != resources.PrometheusRuleKind {
			continue
		}
		s.exprs, s.recorded, s.err = ruleExprs([]*unstructured.Unstructured{o.Unstructured})
		return s
	}
	s.err = errors.New("Build applies no PrometheusRule for a Memcached with every alert on")
	return s
}

// operatorAlerts returns the expressions of the PrometheusRule at path.
func operatorAlerts(path string) source {
	s := source{name: path}
	f, err := os.Open(path)
	if err != nil {
		s.err = err
		return s
	}
	defer f.Close()
	var objects []*unstructured.Unstructured
	decoder := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			s.err = fmt.Errorf("failed to decode: %w", err)
			return s
		}
		if len(obj.Object) > 0 {
			objects = append(objects, obj)
		}
	}
	s.exprs, s.recorded, s.err = ruleExprs(objects)
	return s
}

// rule is a rule of a PrometheusRule.
type rule struct {
	Alert  string             `json:"alert"`
	Record string             `json:"record"`
	Expr   intstr.IntOrString `json:"expr"`
}

// ruleExprs returns the expressions of the rules of the PrometheusRules in
// objects, and the names their recording rules define.
func ruleExprs(objects []*unstructured.Unstructured) (exprs, recorded []string, err error) {
	for _, obj := range objects {
		if obj.GroupVersionKind() != resources.PrometheusRuleGVK {
			return nil, nil, fmt.Errorf("holds a %s %q, not only PrometheusRules", obj.GroupVersionKind(), obj.GetName())
		}
		var spec struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		data, err := json.Marshal(obj.Object["spec"])
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(data, &spec); err != nil {
			return nil, nil, fmt.Errorf("PrometheusRule %q: %w", obj.GetName(), err)
		}
		for _, g := range spec.Groups {
			for _, r := range g.Rules {
				if r.Expr.String() == "" {
					return nil, nil, fmt.Errorf("PrometheusRule %q, group %q: rule %q has no expr", obj.GetName(), g.Name, r.Alert+r.Record)
				}
				exprs = append(exprs, r.Expr.String())
				if r.Record != "" {
					recorded = append(recorded, r.Record)
				}
			}
		}
	}
	if len(exprs) == 0 {
		return nil, nil, errors.New("has no rules")
	}
	return exprs, recorded, nil
}

// panel is a panel of a Grafana dashboard, or a row holding panels.
type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// dashboard returns the expressions of the panels of the Grafana dashboard
// at path, its variables replaced by values, and those of the queries of its
// template variables.
func dashboard(path string) source {
	s := source{name: path}
	data, err := os.ReadFile(path)
	if err != nil {
		s.err = err
		return s
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		s.err = fmt.Errorf("failed to decode: %w", err)
		return s
	}
	var walk func([]panel)
	walk = func(panels []panel) {
		for _, p := range panels {
			for _, target := range p.Targets {
				if target.Expr != "" {
					s.exprs = append(s.exprs, substitute(target.Expr))
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(s.exprs) == 0 {
		s.err = errors.New("has no panel with a PromQL target (panels[].targets[].expr)")
		return s
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if expr := variableQuery(v.Query); expr != "" {
			s.exprs = append(s.exprs, substitute(expr))
		}
	}
	return s
}

// variableQuery returns the PromQL expression of the query of a template
// variable of Grafana's Prometheus data source, "" if it has none:
// label_values(<selector>, <label>) and query_result(<expr>) have one,
// label_names() and label_values(<label>) have none.
func variableQuery(raw json.RawMessage) string {
	var query string
	if err := json.Unmarshal(raw, &query); err != nil {
		var object struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(raw, &object) != nil {
			return ""
		}
		query = object.Query
	}
	query = strings.TrimSpace(query)
	if inner, ok := call(query, "query_result"); ok {
		return inner
	}
	if inner, ok := call(query, "label_values"); ok {
		if i := strings.LastIndex(inner, ","); i >= 0 {
			return strings.TrimSpace(inner[:i])
		}
	}
	return ""
}

// call returns the argument text of fn(...) when query is a call of fn.
func call(query, fn string) (string, bool) {
	if !strings.HasPrefix(query, fn+"(") || !strings.HasSuffix(query, ")") {
		return "", false
	}
	return query[len(fn)+1 : len(query)-1], true
}

// grafanaVariable matches Grafana's variable syntaxes: $name, ${name},
// ${name:format} and [[name]].
var grafanaVariable = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]`)

// variablePrefix starts the value that stands in for a dashboard variable.
const variablePrefix = "grafana_variable_"

// substitute replaces the variables of a dashboard's expression with values:
// durations for Grafana's intervals and ranges, numbers for those in
// seconds or milliseconds, and variablePrefix and their name for the others,
// which stand in label values.
func substitute(expr string) string {
	return grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
		m := grafanaVariable.FindStringSubmatch(v)
		name := m[1] + m[2] + m[3]
		switch {
		case !strings.HasPrefix(name, "__"):
			return variablePrefix + name
		case strings.HasSuffix(name, "_ms"), strings.HasSuffix(name, "_s"):
			return "300"
		case strings.Contains(name, "interval"), strings.Contains(name, "range"):
			return "5m"
		default:
			return variablePrefix + name
		}
	})
}

// missing returns the names of want that families lack, sorted. A name
// ending in _bucket, _sum or _count is that of a histogram or summary
// family without the suffix.
func missing(want []string, families map[string]*dto.MetricFamily) []string {
	var out []string
	for _, name := range want {
		if !scraped(name, families) {
			out = append(out, name)
		}
	}
	return out
}

// unmatched returns the selectors of the sources, of the metric names of
// want, that ask for label values no series of families has.
func (u *usage) unmatched(want []string, families map[string]*dto.MetricFamily) []string {
	var out []string
	for _, s := range u.selectors {
		if !slices.Contains(want, s.name) {
			continue
		}
		f := families[s.name]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(s.name, suffix); ok && f == nil {
				f = families[base]
			}
		}
		if !slices.ContainsFunc(f.GetMetric(), func(m *dto.Metric) bool { return hasLabels(m, s.labels) }) {
			out = append(out, fmt.Sprintf("%s (used by %s)", s.selector, s.source))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checked returns how many selectors of the names of want ask for label
// values.
func (u *usage) checked(want []string) int {
	n := 0
	for _, s := range u.selectors {
		if slices.Contains(want, s.name) {
			n++
		}
	}
	return n
}

// hasLabels reports whether m has the labels of want.
func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(want)
}

func scraped(name string, families map[string]*dto.MetricFamily) bool {
	if f, ok := families[name]; ok && len(f.GetMetric()) > 0 {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		f, ok := families[base]
		if !ok || len(f.GetMetric()) == 0 {
			return false
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			return true
		case dto.MetricType_SUMMARY:
			return suffix != "_bucket"
		}
	}
	return false
}

// report returns the names with the sources that use them, one a line.
func (u *usage) report(names []string) string {
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "\n  %s (used by %s)", name, strings.Join(u.users[name], "; "))
	}
	return b.String()
}

// TestSourcesNameKnownMetrics reads the sources and checks that each name
// they use comes from the exporter, the operator or Prometheus, or from one
// of their recording rules.
func TestSourcesNameKnownMetrics(t *testing.T) {
	u := usedNames()
	for _, err := range u.errs {
		t.Error(err)
	}
	for _, s := range u.sources {
		if s.err != nil {
			continue
		}
		counts := map[origin]int{}
		for name, users := range u.users {
			if slices.Contains(users, s.name) {
				counts[classify(name, u.recorded)]++
			}
		}
		t.Logf("%s: %d expressions use %d exporter, %d operator, %d Prometheus and %d recorded metric names",
			s.name, len(s.exprs), counts[fromExporter], counts[fromOperator], counts[fromPrometheus], counts[fromRule])
	}
	if names := u.names(unknown); len(names) > 0 {
		t.Errorf("these metric names come from neither the memcached exporter (memcached_*), the operator (%s), "+
			"Prometheus itself (%s), nor a recording rule:%s",
			strings.Join(operatorPrefixes, ", "), strings.Join(slices.Sorted(maps.Keys(prometheusSeries)), ", "), u.report(names))
	}
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`memcached_up{namespace="a"} == 0`: {"memcached_up"},
		`sum by (le) (rate(workqueue_queue_duration_seconds_bucket[5m])) / on() group_left count(up)`: {
			"up", "workqueue_queue_duration_seconds_bucket"},
		`{__name__="go_goroutines", job="x"}`:                 {"go_goroutines"},
		`histogram_quantile(0.99, sum by (le) (rate(x[5m])))`: {"x"},
		`vector(1)`: nil,
	} {
		got, err := metricNames(expr)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, %v; want %q", expr, got, err, want)
		}
	}
	if _, err := metricNames(`{__name__=~"memcached_.*"}`); err == nil {
		t.Error("metricNames accepts a regular expression of names")
	}
}

func TestSubstitute(t *testing.T) {
	in := `rate(memcached_commands_total{namespace="$namespace",memcached=~"${memcached:regex}",pod="[[pod]]"}[$__rate_interval]) * $__range_s`
	want := `rate(memcached_commands_total{namespace="grafana_variable_namespace",memcached=~"grafana_variable_memcached",pod="grafana_variable_pod"}[5m]) * 300`
	if got := substitute(in); got != want {
		t.Errorf("substitute(%q) = %q, want %q", in, got, want)
	}
	if got := variableQuery(json.RawMessage(`{"query":"label_values(memcached_up{namespace=\"$namespace\"}, memcached)","refId":"A"}`)); got != `memcached_up{namespace="$namespace"}` {
		t.Errorf("variableQuery = %q", got)
	}
	if got := variableQuery(json.RawMessage(`"label_values(namespace)"`)); got != "" {
		t.Errorf("variableQuery of label_values(namespace) = %q, want none", got)
	}
}

func TestMissingMapsSuffixesToFamilies(t *testing.T) {
	families := map[string]*dto.MetricFamily{
		"h": {Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{}}},
		"s": {Type: dto.MetricType_SUMMARY.Enum(), Metric: []*dto.Metric{{}}},
		"g": {Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{}}},
		"e": {Type: dto.MetricType_GAUGE.Enum()},
	}
	got := missing([]string{"h_bucket", "h_sum", "h_count", "s_sum", "s_count", "s_bucket", "g", "g_count", "e", "x"}, families)
	if want := []string{"s_bucket", "g_count", "e", "x"}; !slices.Equal(got, want) {
		t.Errorf("missing = %q, want %q", got, want)
	}
}

func TestSelectorsAskForLabelValues(t *testing.T) {
	sels, err := selectors(`rate(x_bucket{namespace="a",controller="memcached",le="0.1",pod=~"p"}[5m]) / y{status="hit",command="grafana_variable_command"}`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sels {
		got = append(got, s.String())
	}
	if want := []string{`x_bucket{controller="memcached"}`, `y{status="hit"}`}; !slices.Equal(got, want) {
		t.Errorf("selectors = %q, want %q", got, want)
	}
	label := func(name, value string) *dto.LabelPair { return &dto.LabelPair{Name: &name, Value: &value} }
	families := map[string]*dto.MetricFamily{
		"x": {Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Label: []*dto.LabelPair{label("controller", "memcached")}}}},
		"y": {Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Label: []*dto.LabelPair{label("status", "miss")}}}},
	}
	u := &usage{}
	for _, s := range sels {
		u.selectors = append(u.selectors, sourced{selector: s, source: "test"})
	}
	if got, want := u.unmatched([]string{"x_bucket", "y"}, families), []string{`y{status="hit"} (used by test)`}; !slices.Equal(got, want) {
		t.Errorf("unmatched = %q, want %q", got, want)
	}
}
