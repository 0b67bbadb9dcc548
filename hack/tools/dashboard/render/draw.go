package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"example.com/memcached-operator/hack/tools/dashboard/internal/model"
)

// The picture's geometry, in points: the width of Grafana's 24 grid
// columns, the height of one grid row, and the header above the panels.
const (
	pictureWidth = vg.Length(1350)
	gridRow      = vg.Length(30)
	headerHeight = vg.Length(44)
	margin       = vg.Length(6)
)

// drawPicture draws the panels of d, with what results says they show, in d's
// grid into the PNG file out.
func drawPicture(out string, d *model.Dashboard, results []panelResult, rec *recording) error {
	rows := 0
	for _, p := range d.Panels {
		rows = max(rows, p.GridPos.Y+p.GridPos.H)
	}
	height := headerHeight + vg.Length(rows)*gridRow
	img := vgimg.NewWith(vgimg.UseWH(pictureWidth, height), vgimg.UseDPI(96))
	dc := draw.New(img)

	header := plot.New().Title.TextStyle
	header.Font.Size = vg.Points(14)
	header.XAlign = draw.XLeft
	header.YAlign = draw.YTop
	dc.FillText(header, vg.Point{X: margin, Y: height - margin},
		fmt.Sprintf("%s: namespace, memcached and instance All", d.Title))
	note := header
	note.Font.Size = vg.Points(9)
	note.Color = color.Gray{Y: 90}
	dc.FillText(note, vg.Point{X: margin, Y: height - margin - 20},
		fmt.Sprintf("Not Grafana: the dashboard's queries evaluated by Prometheus' PromQL engine on %s of two real "+
			"memcached servers (16 MiB each) under a load of gets and sets, scraped through memcached_exporter every %s; "+
			"%s restarted after %s. Series that stay at 0 are left out; no operator ran, so its gauges are not drawn.",
			rec.end.Sub(rec.start).Round(time.Second), rec.step, rec.restartedPod, rec.restartedAfter))

	column := pictureWidth / 24
	colors := &palette{}
	for _, r := range results {
		g := r.panel.GridPos
		c := draw.Canvas{Canvas: img, Rectangle: vg.Rectangle{
			Min: vg.Point{X: vg.Length(g.X)*column + margin, Y: height - headerHeight - vg.Length(g.Y+g.H)*gridRow + margin},
			Max: vg.Point{X: vg.Length(g.X+g.W)*column - margin, Y: height - headerHeight - vg.Length(g.Y)*gridRow - margin},
		}}
		p, err := panelPlot(r, rec, colors)
		if err != nil {
			return err
		}
		p.Draw(c)
	}

	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("creating %s: %w", out, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

// panelPlot returns the line chart of one panel.
func panelPlot(r panelResult, rec *recording, colors *palette) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = r.panel.Title
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Min, p.X.Max = float64(rec.start.Unix()), float64(rec.end.Unix())
	p.X.Tick.Marker = plot.TimeTicks{Format: "15:04:05", Time: func(t float64) time.Time {
		return time.Unix(int64(t), 0).UTC()
	}}
	unit := r.panel.FieldConfig.Defaults.Unit
	p.Y.Tick.Marker = unitTicks(unit)
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Legend.ThumbnailWidth = vg.Length(12)
	p.Legend.XOffs = vg.Length(4)

	dataMax := 0.0
	drawn := 0
	lines := slices.Clone(r.lines)
	slices.SortFunc(lines, func(a, b line) int { return strings.Compare(a.legend, b.legend) })
	for _, l := range lines {
		if !slices.ContainsFunc(l.points, func(pt [2]float64) bool { return pt[1] != 0 }) {
			continue
		}
		xys := make(plotter.XYs, 0, len(l.points))
		for _, pt := range l.points {
			if math.IsNaN(pt[1]) || math.IsInf(pt[1], 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: pt[0], Y: pt[1]})
			dataMax = max(dataMax, pt[1])
		}
		pl, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("panel %q: %w", r.panel.Title, err)
		}
		pl.Color = colors.of(l.color)
		pl.Width = vg.Length(1.5)
		if l.query > 0 {
			// The second query of a panel: the limit, or out.
			pl.Dashes = []vg.Length{vg.Length(5), vg.Length(3)}
		}
		p.Add(pl)
		p.Legend.Add(l.legend, pl)
		drawn++
	}
	p.Y.Min = 0
	if m := r.panel.FieldConfig.Defaults.Min; m != nil {
		p.Y.Min = *m
	}
	switch m := r.panel.FieldConfig.Defaults.Max; {
	case m != nil:
		p.Y.Max = *m
		// The data fills the top: the legend goes where a ratio seldom is.
		p.Legend.Top, p.Legend.Left = false, false
		p.Legend.YOffs = vg.Length(4)
		p.Legend.XOffs = -vg.Length(4)
	case dataMax > 0:
		// Room above the data for the legend.
		p.Y.Max = dataMax * (1.15 + 0.12*float64(drawn))
	default:
		p.Y.Max = 1
	}
	if drawn == 0 {
		labels, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    plotter.XYs{{X: (p.X.Min + p.X.Max) / 2, Y: (p.Y.Min + p.Y.Max) / 2}},
			Labels: []string{"not drawn: the operator's own gauges (no operator ran)"},
		})
		if err != nil {
			return nil, fmt.Errorf("panel %q: %w", r.panel.Title, err)
		}
		labels.TextStyle[0].XAlign = draw.XCenter
		labels.TextStyle[0].Color = color.Gray{Y: 110}
		p.Add(labels)
	}
	return p, nil
}

// palette gives each color key a color of its own, the same in every panel.
type palette struct {
	keys []string
}

// of returns the color of key.
func (p *palette) of(key string) color.Color {
	i := slices.Index(p.keys, key)
	if i < 0 {
		i = len(p.keys)
		p.keys = append(p.keys, key)
	}
	return plotutil.Color(i)
}

// unitTicks are the default ticks labelled in one of Grafana's units.
type unitTicks string

// Ticks returns the ticks between lo and hi: for bytes, at round numbers of
// KiB, MiB or GiB.
func (u unitTicks) Ticks(lo, hi float64) []plot.Tick {
	scale := 1.0
	if u == "bytes" || u == "Bps" {
		for hi/scale >= 1024 && scale < 1<<30 {
			scale *= 1024
		}
	}
	ticks := plot.DefaultTicks{}.Ticks(lo/scale, hi/scale)
	for i := range ticks {
		ticks[i].Value *= scale
		if ticks[i].Label != "" {
			ticks[i].Label = format(ticks[i].Value, string(u))
		}
	}
	return ticks
}

// format formats v in Grafana's unit.
func format(v float64, unit string) string {
	switch unit {
	case "percentunit":
		return fmt.Sprintf("%.0f%%", v*100)
	case "bytes":
		return binary(v, "B")
	case "Bps":
		return binary(v, "B/s")
	case "ops":
		return decimal(v) + " ops/s"
	case "s":
		return (time.Duration(v) * time.Second).String()
	default:
		return decimal(v)
	}
}

// binary formats v with a binary prefix.
func binary(v float64, suffix string) string {
	for _, prefix := range []string{"", "Ki", "Mi", "Gi"} {
		if math.Abs(v) < 1024 || prefix == "Gi" {
			return trim(v) + " " + prefix + suffix
		}
		v /= 1024
	}
	return ""
}

// decimal formats v with a decimal prefix.
func decimal(v float64) string {
	for _, prefix := range []string{"", "K", "M"} {
		if math.Abs(v) < 1000 || prefix == "M" {
			return trim(v) + prefix
		}
		v /= 1000
	}
	return ""
}

// trim formats v with at most one decimal.
func trim(v float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0")
}
