package main

import (
	"context"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/procfs"

	"example.com/memcached-operator/test/internal/localrun"
)

// counters are the operator's cumulative counters at one moment.
type counters struct {
	requests        map[string]float64 // "METHOD CODE" -> count
	reconciles      float64
	reconcileErrors float64
	cpuSeconds      float64
	processes       cpuTimes
}

// measure reads the operator's counters, from its metrics unless op is nil,
// and the CPU time of every process in pids.
func measure(ctx context.Context, op *localrun.Operator, pids map[string]int) (counters, error) {
	c := counters{requests: map[string]float64{}}
	if op != nil {
		var err error
		if c, _, err = scrape(ctx, op); err != nil {
			return counters{}, err
		}
	}
	var err error
	c.processes, err = takeCPU(pids)
	return c, err
}

func scrape(ctx context.Context, op *localrun.Operator) (counters, map[string]*dto.MetricFamily, error) {
	families, err := op.Metrics(ctx)
	if err != nil {
		return counters{}, nil, err
	}
	c := counters{requests: map[string]float64{}}
	for _, m := range families["rest_client_requests_total"].GetMetric() {
		c.requests[label(m, "method")+" "+label(m, "code")] += m.GetCounter().GetValue()
	}
	for _, m := range families["controller_runtime_reconcile_total"].GetMetric() {
		c.reconciles += m.GetCounter().GetValue()
		if label(m, "result") == "error" {
			c.reconcileErrors += m.GetCounter().GetValue()
		}
	}
	for _, m := range families["process_cpu_seconds_total"].GetMetric() {
		c.cpuSeconds += m.GetCounter().GetValue()
	}
	return c, families, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Phase is what the operator did during one phase of the benchmark.
type Phase struct {
	Seconds         float64            `json:"seconds"`
	Requests        map[string]float64 `json:"requests"` // by "METHOD CODE"
	Total           float64            `json:"total"`
	Writes          float64            `json:"writes"`
	Conflicts       float64            `json:"conflicts"`
	Reconciles      float64            `json:"reconciles"`
	ReconcileErrors float64            `json:"reconcileErrors"`
	// CPUSeconds is the operator's CPU time (user and system) in the phase.
	CPUSeconds float64 `json:"cpuSeconds"`
	// ProcessCPU is the CPU time of every process of the scenario in the
	// phase: the cluster's components, the operator, the benchmark.
	ProcessCPU cpuTimes `json:"processCPUSeconds,omitempty"`
}

func phaseBetween(before, after counters, d time.Duration) Phase {
	p := Phase{Seconds: d.Seconds(), Requests: map[string]float64{},
		Reconciles: after.reconciles - before.reconciles, ReconcileErrors: after.reconcileErrors - before.reconcileErrors,
		CPUSeconds: after.cpuSeconds - before.cpuSeconds, ProcessCPU: after.processes.since(before.processes)}
	for key, v := range after.requests {
		delta := v - before.requests[key]
		if delta == 0 {
			continue
		}
		p.Requests[key] = delta
		p.Total += delta
		method, code, _ := strings.Cut(key, " ")
		if isWrite(method) {
			p.Writes += delta
		}
		if code == "409" {
			p.Conflicts += delta
		}
	}
	return p
}

func isWrite(method string) bool {
	switch method {
	case "POST", "PUT", "PATCH", "DELETE":
		return true
	}
	return false
}

// sampleInterval is how often the sampler scrapes the operator: as often
// as a Prometheus would. At N=1000, a scrape of the operator's metrics takes
// it about 30 ms of CPU (its gauges of every Memcached, encoded and
// compressed): scraped every second, it took a fifth of the operator's CPU
// to converge.
const sampleInterval = 10 * time.Second

// sampler scrapes the operator every sampleInterval: its request rate, heap
// and anonymous resident memory (its heap, stacks and runtime, not the pages
// of its binary).
type sampler struct {
	mu        sync.Mutex
	start     time.Time
	perSecond []float64
	heapMax   float64
	anonMax   float64
	last      float64
}

func startSampler(ctx context.Context, op *localrun.Operator) *sampler {
	s := &sampler{start: time.Now(), last: -1}
	go every(ctx, sampleInterval, func() { s.sample(ctx, op) })
	return s
}

// sample scrapes op once. The requests since the last scrape count as a
// rate over each of its seconds.
func (s *sampler) sample(ctx context.Context, op *localrun.Operator) {
	c, families, err := scrape(ctx, op)
	if err != nil {
		return
	}
	var total float64
	for _, v := range c.requests {
		total += v
	}
	heap := families["go_memstats_heap_inuse_bytes"].GetMetric()
	status, _ := procStatus(op.PID()) // zero once it exited
	s.mu.Lock()
	s.anonMax = max(s.anonMax, mib(status.RssAnon))
	if s.last >= 0 {
		seconds := int(sampleInterval / time.Second)
		for range seconds {
			s.perSecond = append(s.perSecond, (total-s.last)/float64(seconds))
		}
	}
	s.last = total
	if len(heap) > 0 && heap[0].GetGauge().GetValue() > s.heapMax {
		s.heapMax = heap[0].GetGauge().GetValue()
	}
	s.mu.Unlock()
}

// snapshot returns the requests per second so far, and the peaks of the
// heap in use, in bytes, and of the anonymous resident memory, in MiB.
func (s *sampler) snapshot() (perSecond []float64, heapMax, anonMax float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]float64(nil), s.perSecond...), s.heapMax, s.anonMax
}

// procStatus reads /proc/<pid>/status, where the memory figures of a process
// are, in bytes.
func procStatus(pid int) (procfs.ProcStatus, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procfs.ProcStatus{}, err
	}
	return p.NewStatus()
}

// mib converts bytes to MiB.
func mib(bytes uint64) float64 {
	return float64(bytes) / (1 << 20)
}
