package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v2"

	"example.com/memcached-operator/hack/tools/dashboard/internal/model"
)

// committed is the dashboard as the repository holds it.
var committed = filepath.Join("..", "..", "..", "config", "components", "dashboard", "memcached-dashboard.json")

// generated returns the dashboard's model as Generate writes it.
func generated(t *testing.T) (*model.Dashboard, []byte) {
	t.Helper()
	data, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return m, data
}

func TestCommittedDashboardIsGenerated(t *testing.T) {
	_, want := generated(t)
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what the generator writes: run 'make dashboard' and commit it", committed)
	}
}

func TestDashboardHasItsVariables(t *testing.T) {
	m, _ := generated(t)
	if m.UID != UID || m.Title != "Memcached" {
		t.Errorf("uid %q, title %q; want %q, %q", m.UID, m.Title, UID, "Memcached")
	}
	want := map[string]string{
		datasourceVar: "datasource",
		namespaceVar:  "query",
		memcachedVar:  "query",
		instanceVar:   "query",
	}
	got := map[string]string{}
	for _, v := range m.Templating.List {
		got[v.Name] = v.Type
	}
	for name, typ := range want {
		if got[name] != typ {
			t.Errorf("variable %q has type %q, want %q", name, got[name], typ)
		}
	}
}

// TestEveryPanelQueriesValidPromQL parses each query with the variables
// replaced, and checks that it selects by the variables: every series it
// reads has the namespace and memcached matchers.
func TestEveryPanelQueriesValidPromQL(t *testing.T) {
	m, _ := generated(t)
	if len(m.Panels) != len(panels) {
		t.Fatalf("%d panels, want %d", len(m.Panels), len(panels))
	}
	p := parser.NewParser(parser.Options{})
	values := map[string]string{namespaceVar: ".*", memcachedVar: ".*", instanceVar: ".*"}
	for _, panel := range m.Panels {
		if panel.Type != "timeseries" || panel.Title == "" || panel.Description == "" {
			t.Errorf("panel %d: type %q, title %q, description %q; want a time series with a title and a description",
				panel.ID, panel.Type, panel.Title, panel.Description)
		}
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, target := range panel.Targets {
			expr, err := p.ParseExpr(model.Expand(target.Expr, values, "5m"))
			if err != nil {
				t.Errorf("panel %q, query %s: %v", panel.Title, target.RefID, err)
				continue
			}
			if target.LegendFormat == "" {
				t.Errorf("panel %q, query %s has no legend", panel.Title, target.RefID)
			}
			selectors := 0
			parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
				vs, ok := node.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				selectors++
				var names []string
				for _, matcher := range vs.LabelMatchers {
					names = append(names, matcher.Name)
				}
				for _, label := range []string{"namespace", "memcached"} {
					if !slices.Contains(names, label) {
						t.Errorf("panel %q, query %s: %s does not select by %s", panel.Title, target.RefID, vs, label)
					}
				}
				return nil
			})
			if selectors == 0 {
				t.Errorf("panel %q, query %s reads no series", panel.Title, target.RefID)
			}
		}
	}
}

// TestChartConfigMapHoldsTheDashboard renders the chart's dashboard
// ConfigMap with the Helm binary of HELM (make test sets it) and checks
// that it holds the committed dashboard, with Grafana's sidecar label.
func TestChartConfigMapHoldsTheDashboard(t *testing.T) {
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Fatal("HELM names no Helm binary: run this test with 'make test', which builds Helm")
	}
	want, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join("..", "..", "..", "charts", "memcached-operator")
	cmd := exec.CommandContext(t.Context(), helm, "template", "memcached-operator", chart,
		"--namespace", "memcached-operator-system", "--show-only", "templates/grafana/dashboard.yaml",
		"--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.namespace=monitoring")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	var cm struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name      string            `yaml:"name"`
			Namespace string            `yaml:"namespace"`
			Labels    map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(out, &cm); err != nil {
		t.Fatalf("decoding the ConfigMap: %v\n%s", err, out)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Namespace != "monitoring" || cm.Metadata.Labels["grafana_dashboard"] != "1" {
		t.Errorf("got %s %s/%s with labels %v; want a ConfigMap in monitoring labelled grafana_dashboard: \"1\"",
			cm.Kind, cm.Metadata.Namespace, cm.Metadata.Name, cm.Metadata.Labels)
	}
	if cm.Data["memcached-dashboard.json"] != string(want) {
		t.Errorf("the chart's ConfigMap does not hold %s: run 'make manifests'", committed)
	}
}
