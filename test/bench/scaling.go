package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// writeScaling reads every report in dir (bench-n<N>.json) and, when there
// are reports for two N or more, writes how the operator's costs grow with N:
// a table, bench-scaling.md, and a chart with N on the x-axis,
// bench-scaling.png.
func writeScaling(dir string) error {
	paths, err := filepath.Glob(filepath.Join(dir, "bench-n*.json"))
	if err != nil {
		return err
	}
	var reports []*Report
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		r := &Report{}
		if err := json.Unmarshal(data, r); err != nil || r.Operator == nil || len(r.Operator.Available.At) == 0 {
			fmt.Printf("Scaling: leaving out %s, a report of another version of the benchmark\n", path)
			continue
		}
		reports = append(reports, r)
	}
	if len(reports) < 2 {
		return nil
	}
	slices.SortFunc(reports, func(a, b *Report) int { return cmp.Compare(a.N, b.N) })
	base := filepath.Join(dir, "bench-scaling")
	if err := os.WriteFile(base+".md", []byte(scalingTable(reports)), 0o644); err != nil {
		return err
	}
	if err := scalingChart(reports, base+".png"); err != nil {
		return err
	}
	fmt.Printf("Scaling over N: %s.md, %s.png\n", base, base)
	return nil
}

func scalingTable(reports []*Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| N | all Available | / baseline | p50 create → Available | operator CPU per Memcached | requests per Memcached | "+
		"memory limit | peak RSS | peak anonymous RSS | peak live heap | heap once settled |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range reports {
		op := r.Operator
		ratio := "—"
		if r.Baseline != nil {
			ratio = fmt.Sprintf("%.2f×", op.Converge.Seconds/r.Baseline.ConvergeSeconds)
		}
		fmt.Fprintf(&b, "| %d | %.1f s | %s | %.1f s | %.1f ms | %.2f | %s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB |\n",
			r.N, op.Converge.Seconds, ratio, op.Available.P50, 1000*op.Converge.CPUSeconds/float64(r.N),
			op.Converge.Total/float64(r.N), memoryLimit(r.MemoryLimit), op.PeakRSSMiB, op.PeakAnonMiB, op.PeakLiveHeapMiB, op.SettledHeapMiB)
	}
	return b.String()
}

// scalingChart draws three panels over N: the operator's CPU per Memcached,
// its requests per Memcached, and its memory.
func scalingChart(reports []*Report, path string) error {
	series := func(f func(*Report) float64) plotter.XYs {
		points := make(plotter.XYs, 0, len(reports))
		for _, r := range reports {
			points = append(points, plotter.XY{X: float64(r.N), Y: f(r)})
		}
		return points
	}
	type line struct {
		name   string
		points plotter.XYs
		c      color.Color
	}
	panels := []struct {
		title, unit string
		lines       []line
	}{
		{"Operator CPU per Memcached to converge", "ms", []line{
			{"CPU", series(func(r *Report) float64 { return 1000 * r.Operator.Converge.CPUSeconds / float64(r.N) }), operatorColor}}},
		{"Operator requests per Memcached to converge", "requests", []line{
			{"requests", series(func(r *Report) float64 { return r.Operator.Converge.Total / float64(r.N) }), operatorColor}}},
		{"Operator memory", "MiB", []line{
			{"peak RSS", series(func(r *Report) float64 { return r.Operator.PeakRSSMiB }), operatorColor},
			{"peak anonymous RSS", series(func(r *Report) float64 { return r.Operator.PeakAnonMiB }), color.Black},
			{"peak live heap", series(func(r *Report) float64 { return r.Operator.PeakLiveHeapMiB }), baselineColor},
			{"heap once settled", series(func(r *Report) float64 { return r.Operator.SettledHeapMiB }), anchorColor}}},
	}
	plots := make([][]*plot.Plot, 0, len(panels))
	for _, panel := range panels {
		p := plot.New()
		p.Title.Text = panel.title
		p.X.Label.Text = "N, Memcacheds (log scale)"
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{}
		p.Y.Label.Text = panel.unit
		p.Y.Min = 0
		for _, l := range panel.lines {
			lp, points, err := plotter.NewLinePoints(l.points)
			if err != nil {
				return err
			}
			lp.Color, points.Color = l.c, l.c
			p.Add(lp, points)
			p.Legend.Add(l.name, lp)
		}
		p.Legend.Top, p.Legend.Left = true, true
		plots = append(plots, []*plot.Plot{p})
	}
	img := vgimg.New(16*vg.Centimeter, 27*vg.Centimeter)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Centimeter / 2, PadTop: vg.Centimeter / 4, PadBottom: vg.Centimeter / 4,
		PadLeft: vg.Centimeter / 4, PadRight: vg.Centimeter / 4}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return err
	}
	return f.Close()
}
