package main

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/prometheus/promql"

	"example.com/memcached-operator/hack/tools/dashboard/internal/model"
)

// line is one series of a panel: its legend, its points (Unix seconds,
// value), the index of its query in the panel, and the key of its color:
// its pod, so that a server has one color in every panel.
type line struct {
	legend string
	points [][2]float64
	query  int
	color  string
}

// panelResult is what a panel shows.
type panelResult struct {
	panel model.Panel
	lines []line
}

// legendLabel is a {{label}} of a legend format.
var legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// evaluate evaluates every query of every panel over the recording, with
// every variable at All, as Grafana would with a step of one scrape interval.
func evaluate(ctx context.Context, rec *recording, panels []model.Panel) ([]panelResult, error) {
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples:    50_000_000,
		Timeout:       time.Minute,
		LookbackDelta: 5 * time.Minute,
	})
	all := map[string]string{namespaceLabel: ".*", memcachedLabel: ".*", instanceLabel: ".*"}
	results := make([]panelResult, 0, len(panels))
	for _, p := range panels {
		result := panelResult{panel: p}
		for i, target := range p.Targets {
			expr := model.Expand(target.Expr, all, rec.rateInterval.String())
			q, err := engine.NewRangeQuery(ctx, rec.db, nil, expr, rec.start, rec.end, rec.step)
			if err != nil {
				return nil, fmt.Errorf("panel %q: %s: %w", p.Title, expr, err)
			}
			matrix, err := q.Exec(ctx).Matrix()
			q.Close()
			if err != nil {
				return nil, fmt.Errorf("panel %q: %s: %w", p.Title, expr, err)
			}
			for _, series := range matrix {
				l := line{legend: legendLabel.ReplaceAllStringFunc(target.LegendFormat, func(m string) string {
					return series.Metric.Get(legendLabel.FindStringSubmatch(m)[1])
				}), query: i, color: series.Metric.Get("pod")}
				if l.color == "" {
					l.color = l.legend
				}
				for _, point := range series.Floats {
					l.points = append(l.points, [2]float64{float64(point.T) / 1000, point.F})
				}
				result.lines = append(result.lines, l)
			}
		}
		results = append(results, result)
	}
	return results, nil
}
