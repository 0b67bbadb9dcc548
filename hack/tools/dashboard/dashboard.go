/*
Copyright The memcached-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package main

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// UID is the dashboard's uid: it stays the same across versions, so that
// Grafana replaces the dashboard it loaded before instead of adding another.
const UID = "memcached-operator"

// The dashboard's variables.
const (
	datasourceVar = "datasource"
	namespaceVar  = "namespace"
	memcachedVar  = "memcached"
	instanceVar   = "instance"
)

// selector selects the exporter's series of the servers the variables
// select. The ServiceMonitor gives every series the labels namespace,
// memcached (the Memcached's name), instance (the pod's address) and pod.
const selector = `namespace=~"$namespace", memcached=~"$memcached", instance=~"$instance"`

// operatorSelector selects the operator's gauges of the Memcacheds the
// variables select; they have no instance of a memcached server.
const operatorSelector = `namespace=~"$namespace", memcached=~"$memcached"`

// podLegend names a series by its server's pod.
const podLegend = "{{pod}}"

// unitShort is Grafana's unit of plain numbers.
const unitShort = "short"

// target is one query of a panel.
type target struct {
	expr   string
	legend string
}

// panel is one time series panel of the dashboard.
type panel struct {
	title       string
	description string
	unit        string
	min, max    *float64
	targets     []target
}

// rate returns the per-second rate of the counter metric of the selected
// servers, over Grafana's rate interval.
func rate(metric, extra string) string {
	return fmt.Sprintf(`rate(%s{%s%s}[$__rate_interval])`, metric, selector, extra)
}

// panels are the dashboard's panels, in the order of the grid: three a row.
var panels = []panel{
	{
		title: "Hit ratio",
		description: "The share of gets that find their key, per server: " +
			"hits / (hits + misses) of memcached_commands_total{command=\"get\"}. " +
			"A drop follows a restart (an empty cache), evictions, or a change of the server list.",
		unit: "percentunit", min: cog.ToPtr(0.0), max: cog.ToPtr(1.0),
		targets: []target{{
			expr: `sum by (namespace, memcached, pod) (` + rate("memcached_commands_total", `, command="get", status="hit"`) + `)` +
				` / sum by (namespace, memcached, pod) (` + rate("memcached_commands_total", `, command="get"`) + `)`,
			legend: podLegend,
		}},
	},
	{
		title: "Commands per second",
		description: "The commands the selected servers serve a second, by command " +
			"(get, set, touch, delete, incr, decr, cas, flush...), all statuses: memcached_commands_total.",
		unit: "ops", min: cog.ToPtr(0.0),
		targets: []target{{
			expr:   `sum by (command) (` + rate("memcached_commands_total", "") + `)`,
			legend: "{{command}}",
		}},
	},
	{
		title: "Evictions per second",
		description: "Valid items each server removes a second to make room for new ones: " +
			"memcached_items_evicted_total. Sustained evictions with a falling hit ratio mean the working " +
			"set does not fit: raise spec.memoryMB or spec.size (alert MemcachedEvictions).",
		unit: "ops", min: cog.ToPtr(0.0),
		targets: []target{{
			expr:   rate("memcached_items_evicted_total", ""),
			legend: podLegend,
		}},
	},
	{
		title: "Memory used and limit",
		description: "The bytes each server uses to store items (memcached_current_bytes) against the memory " +
			"it may use for them (memcached_limit_bytes, memcached's -m: spec.memoryMB).",
		unit: "bytes", min: cog.ToPtr(0.0),
		targets: []target{
			{expr: `memcached_current_bytes{` + selector + `}`, legend: "{{pod}} used"},
			{expr: `memcached_limit_bytes{` + selector + `}`, legend: "{{pod}} limit"},
		},
	},
	{
		title:       "Items",
		description: "The items each server holds: memcached_current_items.",
		unit:        unitShort, min: cog.ToPtr(0.0),
		targets: []target{{
			expr:   `memcached_current_items{` + selector + `}`,
			legend: podLegend,
		}},
	},
	{
		title: "Connections and limit",
		description: "The open connections of each server (memcached_current_connections) against its limit " +
			"(memcached_max_connections, memcached's -c: spec.maxConnections). At the limit, memcached refuses " +
			"new connections (alert MemcachedConnectionLimitApproaching).",
		unit: unitShort, min: cog.ToPtr(0.0),
		targets: []target{
			{expr: `memcached_current_connections{` + selector + `}`, legend: "{{pod}} open"},
			{expr: `memcached_max_connections{` + selector + `}`, legend: "{{pod}} limit"},
		},
	},
	{
		title: "Network",
		description: "The bytes each server reads from its clients (memcached_read_bytes_total, in) " +
			"and writes to them (memcached_written_bytes_total, out), a second.",
		unit: "Bps", min: cog.ToPtr(0.0),
		targets: []target{
			{expr: rate("memcached_read_bytes_total", ""), legend: "{{pod}} in"},
			{expr: rate("memcached_written_bytes_total", ""), legend: "{{pod}} out"},
		},
	},
	{
		title: "Ready servers and size",
		description: "The memcached servers of each Memcached that are ready (status.readyReplicas) against " +
			"spec.size, as the operator reports them on its own metrics endpoint " +
			"(memcached_operator_memcached_ready_servers and memcached_operator_memcached_desired_servers; " +
			"alert MemcachedRingDegraded). Empty unless Prometheus scrapes the operator.",
		unit: unitShort, min: cog.ToPtr(0.0),
		targets: []target{
			{
				expr:   `max by (namespace, memcached) (memcached_operator_memcached_ready_servers{` + operatorSelector + `})`,
				legend: "{{memcached}} ready",
			},
			{
				expr:   `max by (namespace, memcached) (memcached_operator_memcached_desired_servers{` + operatorSelector + `})`,
				legend: "{{memcached}} size",
			},
		},
	},
	{
		title: "Ready proxies",
		description: "With spec.proxy, the proxies of each Memcached that are ready (status.proxy.readyReplicas) " +
			"against spec.proxy.replicas, as the operator reports them " +
			"(memcached_operator_memcached_ready_proxies and memcached_operator_memcached_desired_proxies; " +
			"alert MemcachedProxiesDown). The Service <name> sends clients to these proxies. Empty without " +
			"spec.proxy, or unless Prometheus scrapes the operator.",
		unit: unitShort, min: cog.ToPtr(0.0),
		targets: []target{
			{
				expr:   `max by (namespace, memcached) (memcached_operator_memcached_ready_proxies{` + operatorSelector + `})`,
				legend: "{{memcached}} ready",
			},
			{
				expr:   `max by (namespace, memcached) (memcached_operator_memcached_desired_proxies{` + operatorSelector + `})`,
				legend: "{{memcached}} replicas",
			},
		},
	},
	{
		title: "Uptime",
		description: "How long each server has been running (memcached_uptime_seconds). A drop to zero is a " +
			"restart, after which the server's cache is empty (alert MemcachedRestarted).",
		unit: "s", min: cog.ToPtr(0.0),
		targets: []target{{
			expr:   `memcached_uptime_seconds{` + selector + `}`,
			legend: podLegend,
		}},
	},
}

// datasource is the reference of every panel and query to the datasource the
// datasource variable selects.
func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + datasourceVar + "}")}
}

// queryVariable returns a variable whose values are those of label in the
// series query selects, several of them or all.
func queryVariable(name, label, query string) *dashboard.QueryVariableBuilder {
	definition := fmt.Sprintf("label_values(%s, %s)", query, label)
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(definition)}).
		Definition(definition).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".*").
		Current(dashboard.VariableOption{
			Selected: cog.ToPtr(true),
			Text:     dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
			Value:    dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")},
		})
}

// Build builds the dashboard. It uses the SDK's classic dashboard model
// (panels[].targets[]), which Grafana's import and dashboard sidecar load,
// rather than the SDK's preferred dashboardv2, which only Grafana's v2 API
// takes.
func Build() (dashboard.Dashboard, error) { //nolint:staticcheck // the classic model, as above
	b := dashboard.NewDashboardBuilder("Memcached"). //nolint:staticcheck // the classic model, as above
								Uid(UID).
								Description("The memcached servers of the Memcacheds of memcached-operator, from memcached_exporter "+
			"(the ServiceMonitor of spec.monitoring) and the operator's own metrics.").
		Tags([]string{"memcached", "memcached-operator"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder(datasourceVar).
			Label("Data source").
			Type("prometheus")).
		WithVariable(queryVariable(namespaceVar, "namespace", "memcached_up")).
		WithVariable(queryVariable(memcachedVar, "memcached", `memcached_up{namespace=~"$namespace"}`)).
		WithVariable(queryVariable(instanceVar, "instance", `memcached_up{namespace=~"$namespace", memcached=~"$memcached"}`))
	for i, p := range panels {
		pb := timeseries.NewPanelBuilder().
			Id(uint32(i + 1)).
			Title(p.title).
			Description(p.description).
			Datasource(datasource()).
			Unit(p.unit).
			Span(8).
			Height(8).
			FillOpacity(10).
			ShowPoints(common.VisibilityModeNever).
			Legend(common.NewVizLegendOptionsBuilder().
				DisplayMode(common.LegendDisplayModeList).
				Placement(common.LegendPlacementBottom).
				ShowLegend(true)).
			Tooltip(common.NewVizTooltipOptionsBuilder().
				Mode(common.TooltipDisplayModeMulti).
				Sort(common.SortOrderDescending))
		if p.min != nil {
			pb.Min(*p.min)
		}
		if p.max != nil {
			pb.Max(*p.max)
		}
		for j, t := range p.targets {
			pb.WithTarget(prometheus.NewDataqueryBuilder().
				RefId(string(rune('A' + j))).
				Datasource(datasource()).
				Expr(t.expr).
				LegendFormat(t.legend).
				Range())
		}
		b.WithPanel(pb)
	}
	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("building the dashboard: %w", err) //nolint:staticcheck // the classic model
	}
	return d, nil
}

// Generate returns the dashboard as Grafana's JSON model, indented, with a
// final newline.
func Generate() ([]byte, error) {
	d, err := Build()
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the dashboard: %w", err)
	}
	return append(out, '\n'), nil
}
