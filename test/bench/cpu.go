package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is the unit of the CPU times in /proc/<pid>/stat (USER_HZ),
// 100 per second on every Linux architecture Go supports.
const clockTicks = 100

// processCPU returns the CPU time, user and system, a process has used, in
// seconds.
func processCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields that
	// follow it start with the state, field 3; utime and stime are 14 and 15.
	_, rest, ok := strings.Cut(string(data), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, data)
	}
	var ticks float64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected /proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	return ticks / clockTicks, nil
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
