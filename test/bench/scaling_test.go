package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScalingCoversEveryReportOfThisBenchmark(t *testing.T) {
	dir := t.TempDir()
	for n, limit := range map[int]string{1000: "128Mi", 200: ""} {
		r := &Report{N: n, MemoryLimit: limit, Operator: &OperatorResult{Available: Latency{At: []float64{1}},
			Converge: Phase{Seconds: float64(n) / 10, CPUSeconds: float64(n) / 100, Total: float64(14 * n)}, PeakRSSMiB: 100}}
		if err := r.write(dir); err != nil {
			t.Fatal(err)
		}
	}
	// A report of an older version of the benchmark is left out.
	if err := os.WriteFile(filepath.Join(dir, "bench-n20.json"), []byte(`{"n":20,"operator":{"available":[]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeScaling(dir); err != nil {
		t.Fatal(err)
	}
	table, err := os.ReadFile(filepath.Join(dir, "bench-scaling.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(table)), "\n")[2:]
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "| 200 | 20.0 s |") || !strings.HasPrefix(rows[1], "| 1000 | 100.0 s |") {
		t.Fatalf("want a row for N=200 and one for N=1000, in that order:\n%s", table)
	}
	if !strings.Contains(rows[1], "| 10.0 ms | 14.00 | 128Mi |") {
		t.Errorf("want 10 ms of CPU, 14 requests per Memcached and the memory limit at N=1000:\n%s", rows[1])
	}
	if !strings.Contains(rows[0], "| 14.00 | — |") {
		t.Errorf("want — for the memory limit at N=200, whose report has none recorded:\n%s", rows[0])
	}
	if info, err := os.Stat(filepath.Join(dir, "bench-scaling.png")); err != nil || info.Size() == 0 {
		t.Fatalf("no chart: %v", err)
	}
}
