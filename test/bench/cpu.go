package main

import (
	"fmt"
	"os"

	"github.com/prometheus/procfs"
)

// processCPU returns the CPU time, user and system, a process has used, in
// seconds.
func processCPU(pid int) (float64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	stat, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return stat.CPUTime(), nil
}

// cpuTimes is the CPU time, in seconds, of each process of a scenario by
// name: the cluster's components, the operator, and the benchmark itself.
type cpuTimes map[string]float64

// benchProcess names the benchmark's own process, its clients and watcher.
const benchProcess = "bench (clients, watcher)"

// takeCPU reads the CPU time of every process in pids, and of the benchmark
// itself.
func takeCPU(pids map[string]int) (cpuTimes, error) {
	times := cpuTimes{}
	for name, pid := range pids {
		t, err := processCPU(pid)
		if err != nil {
			return nil, fmt.Errorf("CPU time of %s: %w", name, err)
		}
		times[name] = t
	}
	t, err := processCPU(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("CPU time of the benchmark: %w", err)
	}
	times[benchProcess] = t
	return times, nil
}

// since returns the CPU time each process used after before.
func (t cpuTimes) since(before cpuTimes) cpuTimes {
	d := cpuTimes{}
	for name, v := range t {
		d[name] = v - before[name]
	}
	return d
}

// total is the CPU time of every process.
func (t cpuTimes) total() float64 {
	var sum float64
	for _, v := range t {
		sum += v
	}
	return sum
}
