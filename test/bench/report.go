package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"image/color"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// Report holds every figure of a benchmark run.
type Report struct {
	N          int `json:"n"`
	Size       int `json:"size"`
	Namespaces int `json:"namespaces"`
	Parallel   int `json:"parallel"`
	Workers    int `json:"maxConcurrentReconciles"`
	// MemoryLimit is the container memory limit the operator ran under,
	// "none" for none.
	MemoryLimit  string            `json:"memoryLimit,omitempty"`
	QuietSeconds float64           `json:"quietSeconds"`
	Cores        int               `json:"cores"`
	Versions     map[string]string `json:"versions"`
	Operator     *OperatorResult   `json:"operator"`
	Baseline     *BaselineResult   `json:"baseline,omitempty"`
	Anchor       *AnchorResult     `json:"anchor,omitempty"`
	Targets      []Target          `json:"targets"`
}

// Target is one of the goals the benchmark checks.
type Target struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Goal  string `json:"goal"`
	Met   bool   `json:"met"`
	// Applies is false where the run cannot judge the target (no baseline,
	// or fewer Memcacheds than the target speaks of).
	Applies bool `json:"applies"`
}

// ownedObjects is how many objects the operator creates per Memcached of the
// given size.
func ownedObjects(size int) int {
	return len(baselineObjects(&cachev1alpha1.Memcached{Spec: cachev1alpha1.MemcachedSpec{Size: int32(size)}}))
}

func (r *Report) evaluate() {
	op := r.Operator
	owned := ownedObjects(r.Size)
	conflicts := op.Converge.Conflicts + op.Quiet.Conflicts + op.Delete.Conflicts
	if op.Rollout != nil {
		conflicts += op.Rollout.Conflicts
	}
	firstHalf := op.Available.P50 / op.Available.Seconds
	r.Targets = []Target{
		{Name: "Writes in the quiet window", Value: fmt.Sprintf("%.0f (%.0f requests)", op.Quiet.Writes, op.Quiet.Total),
			Goal: "0", Met: op.Quiet.Writes == 0, Applies: true},
		{Name: "Conflicts (409)", Value: fmt.Sprintf("%.0f", conflicts), Goal: "0", Met: conflicts == 0, Applies: true},
		{Name: "Writes per new Memcached", Value: fmt.Sprintf("%.2f", op.WritesPerCR),
			Goal: fmt.Sprintf("≤ %d (%d objects, an Event, 3 status writes, the servers list once the pods have addresses)", owned+5, owned),
			Met:  op.WritesPerCR <= float64(owned+5), Applies: true},
		{Name: "PATCHes that changed nothing", Value: fmt.Sprintf("%.0f", op.UnchangedPatches), Goal: "0",
			Met: op.UnchangedPatches == 0, Applies: true},
		{Name: "Readiness first: p50 create → Available / all Available", Value: fmt.Sprintf("%.0f%% (%.1fs / %.1fs)", 100*firstHalf, op.Available.P50, op.Available.Seconds),
			Goal: "≤ 40%", Met: firstHalf <= 0.4, Applies: r.N >= 1000},
		{Name: "Peak RSS", Value: fmt.Sprintf("%.1f MiB", op.PeakRSSMiB), Goal: "≤ 60 MiB at N=1000",
			Met: op.PeakRSSMiB <= 60, Applies: r.N == 1000},
	}
	if b := r.Baseline; b != nil {
		converge := op.Converge.Seconds / b.ConvergeSeconds
		del := op.Delete.Seconds / b.DeleteSeconds
		r.Targets = append(r.Targets,
			Target{Name: "Convergence / baseline", Value: fmt.Sprintf("%.2f× (%.1fs / %.1fs)", converge, op.Converge.Seconds, b.ConvergeSeconds),
				Goal: "≤ 1.2× (goal 1.05×)", Met: converge <= 1.2, Applies: true},
			Target{Name: "Delete / baseline", Value: fmt.Sprintf("%.2f× (%.1fs / %.1fs)", del, op.Delete.Seconds, b.DeleteSeconds),
				Goal: "≤ 1.2×", Met: del <= 1.2, Applies: true})
	}
}

// smokeProblems lists the correctness facts the smoke run requires and that
// do not hold. Times are not checked.
func (r *Report) smokeProblems() []string {
	var problems []string
	for _, t := range r.Targets {
		switch t.Name {
		case "Writes in the quiet window", "Conflicts (409)":
			if !t.Met {
				problems = append(problems, t.Name+" = "+t.Value)
			}
		}
	}
	if n := len(r.Operator.Available.At); n != r.N {
		problems = append(problems, fmt.Sprintf("%d of %d Memcacheds converged", n, r.N))
	}
	return problems
}

// memoryLimit describes the operator's memory limit, limit, in a report: a
// report of an earlier version of the benchmark has none recorded.
func memoryLimit(limit string) string {
	if limit == "" {
		return "—"
	}
	return limit
}

func (r *Report) markdown() string {
	op := r.Operator
	var b strings.Builder
	fmt.Fprintf(&b, "N=%d Memcacheds of size %d in %d namespaces, %d parallel clients, --max-concurrent-reconciles=%d, memory limit %s, %d cores; %s\n\n",
		r.N, r.Size, r.Namespaces, r.Parallel, r.Workers, memoryLimit(r.MemoryLimit), r.Cores, versionLine(r.Versions))
	fmt.Fprintf(&b, "| figure | operator | baseline (no operator) |\n|---|---|---|\n")
	base := func(f string, args ...any) string {
		if r.Baseline == nil {
			return "—"
		}
		return fmt.Sprintf(f, args...)
	}
	var bConv, bDel, bReq, bCPU float64
	if r.Baseline != nil {
		bConv, bDel, bReq, bCPU = r.Baseline.ConvergeSeconds, r.Baseline.DeleteSeconds, r.Baseline.Requests, r.Baseline.ConvergeCPU.total()
	}
	fmt.Fprintf(&b, "| time to all Available | %.1f s | %s |\n", op.Converge.Seconds, base("%.1f s", bConv))
	fmt.Fprintf(&b, "| create → Available p50 / p99 (the clients created all in) | %.1f s / %.1f s (%.1f s) | — |\n", op.Available.P50, op.Available.P99, op.Available.Created)
	fmt.Fprintf(&b, "| create → all pods ready p50 / p99 (all) | %.1f s / %.1f s (%.1f s) | — |\n", op.PodsReady.P50, op.PodsReady.P99, op.PodsReady.Seconds)
	fmt.Fprintf(&b, "| requests to converge | %.0f (%.2f per CR; %s) | %s |\n", op.Converge.Total, op.Converge.Total/float64(r.N),
		requestLine(op.Converge.Requests), base("%.0f (%.2f per CR)", bReq, bReq/float64(r.N)))
	fmt.Fprintf(&b, "| writes per new CR | %.2f (%.0f PATCH 200: %.0f status changes and %.0f servers list changes seen) | — |\n",
		op.WritesPerCR, op.PatchesOK, op.StatusChanges, op.ConfigMapChanges)
	fmt.Fprintf(&b, "| reconciles / errors to converge | %.0f / %.0f | — |\n", op.Converge.Reconciles, op.Converge.ReconcileErrors)
	fmt.Fprintf(&b, "| quiet window %.0f s | %.0f requests, %.0f writes | — |\n", r.QuietSeconds, op.Quiet.Total, op.Quiet.Writes)
	rolloutCPU := "—"
	if op.Rollout != nil {
		fmt.Fprintf(&b, "| spec change on every CR → all rolled and Available | %.1f s, %.2f writes per CR (%s) | — |\n",
			op.Rollout.Seconds, op.RolloutWritesPerCR, requestLine(op.Rollout.Requests))
		rolloutCPU = fmt.Sprintf("%.1f s", op.Rollout.CPUSeconds)
	}
	fmt.Fprintf(&b, "| delete all → every owned object and pod gone | %.1f s (%.0f requests) | %s |\n", op.Delete.Seconds, op.Delete.Total, base("%.1f s", bDel))
	fmt.Fprintf(&b, "| operator CPU to converge / roll out / delete | %.1f s / %s / %.1f s (%.1f ms per Memcached to converge) | — |\n",
		op.Converge.CPUSeconds, rolloutCPU, op.Delete.CPUSeconds, 1000*op.Converge.CPUSeconds/float64(r.N))
	fmt.Fprintf(&b, "| all processes' CPU to converge | %.1f s | %s |\n", op.Converge.ProcessCPU.total(), base("%.1f s", bCPU))
	fmt.Fprintf(&b, "| operator peak RSS / of it the binary's pages at the end / peak anonymous RSS | %.1f MiB / %.1f MiB / %.1f MiB | — |\n",
		op.PeakRSSMiB, op.RSSFileMiB, op.PeakAnonMiB)
	fmt.Fprintf(&b, "| operator peak heap in use / peak live heap / heap once settled | %.1f MiB / %.1f MiB / %.1f MiB | — |\n\n",
		op.PeakHeapMiB, op.PeakLiveHeapMiB, op.SettledHeapMiB)
	fmt.Fprintf(&b, "| target | value | goal | |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		verdict := "not met"
		switch {
		case !t.Applies:
			verdict = "n/a at this N"
		case t.Met:
			verdict = "met"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, t.Value, t.Goal, verdict)
	}
	r.cpuTable(&b)
	r.deleteTable(&b)
	heapTable(&b, fmt.Sprintf("Live heap at its largest while converging, %.1f MiB at %.0f s, by the function that allocated it (go tool pprof -top bin/bench/heap-peak-n%d.pb.gz):",
		op.PeakLiveHeapMiB, op.PeakLiveHeapAt, r.N), op.PeakHeapTop)
	heapTable(&b, fmt.Sprintf("Heap in use once every Memcached settled, %.1f MiB, by the function that allocated it (go tool pprof -top bin/bench/heap-n%d.pb.gz):",
		op.SettledHeapMiB, r.N), op.HeapTop)
	r.anchorTable(&b)
	return b.String()
}

// cpuTable writes the CPU time of every process while converging and
// deleting, with the operator and without.
func (r *Report) cpuTable(b *strings.Builder) {
	op := r.Operator
	columns := []cpuTimes{op.Converge.ProcessCPU, op.Delete.ProcessCPU}
	fmt.Fprintf(b, "\nCPU seconds by process | converge | delete |")
	if r.Baseline != nil {
		columns = append(columns, r.Baseline.ConvergeCPU, r.Baseline.DeleteCPU)
		fmt.Fprintf(b, " baseline: converge | baseline: delete |")
	}
	fmt.Fprintf(b, "\n|---|%s\n", strings.Repeat("---|", len(columns)))
	names := map[string]float64{}
	for _, c := range columns {
		maps.Copy(names, c)
	}
	for _, name := range append(sortedKeys(names), "all") {
		fmt.Fprintf(b, "| %s |", name)
		for _, c := range columns {
			v, ok := c[name]
			switch {
			case name == "all":
				fmt.Fprintf(b, " %.1f |", c.total())
			case ok:
				fmt.Fprintf(b, " %.1f |", v)
			default:
				fmt.Fprintf(b, " — |")
			}
		}
		fmt.Fprintln(b)
	}
}

// deleteTable writes when the last object of each kind was gone.
func (r *Report) deleteTable(b *strings.Builder) {
	fmt.Fprintf(b, "\nSeconds from the first delete until the last object of each kind was gone | operator |")
	columns := []map[string]float64{r.Operator.Deletion.GoneAt}
	if r.Baseline != nil {
		columns = append(columns, r.Baseline.GoneAt)
		fmt.Fprintf(b, " baseline |")
	}
	if r.Anchor != nil {
		columns = append(columns, r.Anchor.Deletion.GoneAt)
		fmt.Fprintf(b, " anchor |")
	}
	fmt.Fprintf(b, "\n|---|%s\n", strings.Repeat("---|", len(columns)))
	kinds := map[string]float64{}
	for _, c := range columns {
		maps.Copy(kinds, c)
	}
	for _, kind := range sortedByValue(kinds) {
		fmt.Fprintf(b, "| %s |", kind)
		for _, c := range columns {
			if v, ok := c[kind]; ok {
				fmt.Fprintf(b, " %.1f |", v)
			} else {
				fmt.Fprintf(b, " — |")
			}
		}
		fmt.Fprintln(b)
	}
}

func heapTable(b *strings.Builder, title string, entries []HeapEntry) {
	if len(entries) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s\n\n| function | MiB |\n|---|---|\n", title)
	for _, e := range entries {
		fmt.Fprintf(b, "| `%s` | %.1f |\n", e.Function, e.MiB)
	}
}

// anchorTable puts the anchor operator beside this one.
func (r *Report) anchorTable(b *strings.Builder) {
	a, op := r.Anchor, r.Operator
	if a == nil {
		return
	}
	requests := func(f string, args ...any) string {
		if !a.Metrics {
			return "not scraped"
		}
		return fmt.Sprintf(f, args...)
	}
	fmt.Fprintf(b, "\nSide by side with `%s`, on a fresh cluster, the same Memcacheds (spec.size only); a Memcached counts once it has all its pods ready:\n\n", a.Binary)
	fmt.Fprintf(b, "| figure | this operator | anchor |\n|---|---|---|\n")
	fmt.Fprintf(b, "| all pods ready | %.1f s | %.1f s |\n", op.PodsReady.Seconds, a.PodsReady.Seconds)
	fmt.Fprintf(b, "| create → pods ready p50 / p99 | %.1f s / %.1f s | %.1f s / %.1f s |\n", op.PodsReady.P50, op.PodsReady.P99, a.PodsReady.P50, a.PodsReady.P99)
	fmt.Fprintf(b, "| requests to converge | %.0f (%s) | %s |\n", op.Converge.Total, requestLine(op.Converge.Requests),
		requests("%.0f (%s)", a.Converge.Total, requestLine(a.Converge.Requests)))
	fmt.Fprintf(b, "| writes per CR | %.2f | %s |\n", op.WritesPerCR, requests("%.2f", a.WritesPerCR))
	fmt.Fprintf(b, "| conflicts (409) to converge | %.0f | %s |\n", op.Converge.Conflicts, requests("%.0f", a.Converge.Conflicts))
	fmt.Fprintf(b, "| writes in a quiet %.0f s | %.0f | %s |\n", r.QuietSeconds, op.Quiet.Writes, requests("%.0f", a.Quiet.Writes))
	fmt.Fprintf(b, "| delete all | %.1f s (%.0f requests) | %.1f s (%s) |\n", op.Delete.Seconds, op.Delete.Total, a.Delete.Seconds,
		requests("%.0f requests", a.Delete.Total))
	fmt.Fprintf(b, "| operator CPU to converge | %.1f s | %.1f s |\n", op.Converge.ProcessCPU["operator"], a.Converge.ProcessCPU["operator"])
	fmt.Fprintf(b, "| all processes' CPU to converge | %.1f s | %.1f s |\n", op.Converge.ProcessCPU.total(), a.Converge.ProcessCPU.total())
	fmt.Fprintf(b, "| operator peak RSS | %.1f MiB | %.1f MiB |\n", op.PeakRSSMiB, a.PeakRSSMiB)
}

func requestLine(requests map[string]float64) string {
	parts := make([]string, 0, len(requests))
	for _, key := range sortedKeys(requests) {
		parts = append(parts, fmt.Sprintf("%s: %.0f", key, requests[key]))
	}
	return strings.Join(parts, ", ")
}

func (r *Report) write(dir string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	base := filepath.Join(dir, fmt.Sprintf("bench-n%d", r.N))
	if err := os.WriteFile(base+".json", data, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(base+".md", []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	if err := r.chart(base + "-available.png"); err != nil {
		return err
	}
	if err := r.requestsChart(base + "-requests.png"); err != nil {
		return err
	}
	fmt.Printf("Report: %s.json, %s.md, %s-available.png, %s-requests.png\n", base, base, base, base)
	return nil
}

var (
	operatorColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	baselineColor = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	anchorColor   = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
)

// chart plots how many Memcacheds (or, for the baseline, Deployments) were
// available over time.
func (r *Report) chart(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Available over time, N=%d of size %d", r.N, r.Size)
	p.X.Label.Text = "seconds since the first create"
	p.Y.Label.Text = "available"
	if err := addCumulative(p, "operator: Available", r.Operator.Available.At, operatorColor); err != nil {
		return err
	}
	if r.Baseline != nil {
		if err := addCumulative(p, "no operator: Deployment ready", r.Baseline.Available, baselineColor); err != nil {
			return err
		}
	}
	if r.Anchor != nil {
		if err := addCumulative(p, "anchor: pods ready", r.Anchor.PodsReady.At, anchorColor); err != nil {
			return err
		}
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(16*vg.Centimeter, 10*vg.Centimeter, path)
}

func addCumulative(p *plot.Plot, name string, times []float64, c color.Color) error {
	points := make(plotter.XYs, 1, 1+len(times))
	for i, t := range times {
		points = append(points, plotter.XY{X: t, Y: float64(i + 1)})
	}
	line, err := plotter.NewLine(points)
	if err != nil {
		return err
	}
	line.Color = c
	p.Add(line)
	p.Legend.Add(name, line)
	return nil
}

// requestsChart plots API requests per second: the operator's for its whole
// run, and the creating client's for the baseline.
func (r *Report) requestsChart(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("API requests per second, N=%d", r.N)
	p.X.Label.Text = "seconds"
	p.Y.Label.Text = "requests/s"
	series := []struct {
		name  string
		rates []float64
		c     color.Color
	}{{"operator (converge, quiet, spec change, delete)", r.Operator.RequestsPerSecond, operatorColor}}
	if r.Baseline != nil {
		series = append(series, struct {
			name  string
			rates []float64
			c     color.Color
		}{"no operator: the creating client", r.Baseline.RequestsPerSecond, baselineColor})
	}
	for _, s := range series {
		var points plotter.XYs
		for i, v := range s.rates {
			points = append(points, plotter.XY{X: float64(i + 1), Y: v})
		}
		if len(points) == 0 {
			continue
		}
		line, err := plotter.NewLine(points)
		if err != nil {
			return err
		}
		line.Color = s.c
		p.Add(line)
		p.Legend.Add(s.name, line)
	}
	p.Legend.Top = true
	return p.Save(16*vg.Centimeter, 10*vg.Centimeter, path)
}

// versions reads the component versions pinned by the tools modules that
// hack/build-control-plane.sh builds from (the binaries, built from modules,
// carry no version stamp of their own).
func versions(repo string) map[string]string {
	v := map[string]string{}
	for name, module := range map[string]string{
		"kube": "k8s.io/kubernetes", "etcd": "go.etcd.io/etcd/server/v3", "kwok": "sigs.k8s.io/kwok",
	} {
		data, err := os.ReadFile(filepath.Join(repo, "hack", "tools", name, "go.mod"))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
			if len(fields) >= 2 && fields[0] == module {
				v[module] = fields[1]
			}
		}
	}
	return v
}

func versionLine(v map[string]string) string {
	parts := make([]string, 0, len(v))
	for _, k := range sortedKeys(v) {
		parts = append(parts, k+" "+v[k])
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sortedByValue returns the keys of m, by value.
func sortedByValue(m map[string]float64) []string {
	keys := sortedKeys(m)
	slices.SortStableFunc(keys, func(a, b string) int { return cmp.Compare(m[a], m[b]) })
	return keys
}
