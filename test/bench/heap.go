package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"example.com/memcached-operator/test/internal/localrun"
)

// HeapEntry is the heap in use that one function allocated.
type HeapEntry struct {
	Function string  `json:"function"`
	MiB      float64 `json:"mib"`
}

// heapProfile fetches the operator's heap profile, after a garbage
// collection, writes it to path for go tool pprof, and returns the n
// functions that allocated the most heap still in use, and all the heap in
// use, in bytes.
func heapProfile(ctx context.Context, op *localrun.Operator, path string, n int) ([]HeapEntry, int64, error) {
	data, err := op.HeapProfile(ctx, true)
	if err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return nil, 0, err
	}
	return heapTop(data, n)
}

// heapTop returns the n functions that allocated the most heap in use in a
// heap profile, and the heap in use in all, in bytes.
func heapTop(data []byte, n int) ([]HeapEntry, int64, error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, 0, fmt.Errorf("failed to parse the heap profile: %w", err)
	}
	inuse := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "inuse_space" })
	if inuse < 0 {
		return nil, 0, fmt.Errorf("the heap profile has no inuse_space")
	}
	byFunction := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		total += s.Value[inuse]
		if len(s.Location) == 0 || len(s.Location[0].Line) == 0 {
			continue
		}
		byFunction[s.Location[0].Line[0].Function.Name] += s.Value[inuse]
	}
	top := make([]HeapEntry, 0, len(byFunction))
	for f, size := range byFunction {
		top = append(top, HeapEntry{Function: f, MiB: float64(size) / (1 << 20)})
	}
	slices.SortFunc(top, func(a, b HeapEntry) int { return cmp.Compare(b.MiB, a.MiB) })
	return top[:min(n, len(top))], total, nil
}

// peakHeap keeps, of the heap profiles it takes every interval, the one with
// the most heap in use: where the memory goes at the busiest moment. The
// profiles force no garbage collection; each is the heap live at the last.
type peakHeap struct {
	op    *localrun.Operator
	start time.Time

	mu      sync.Mutex
	profile []byte
	inuse   int64
	at      time.Duration
}

func watchPeakHeap(ctx context.Context, op *localrun.Operator, interval time.Duration) *peakHeap {
	h := &peakHeap{op: op, start: time.Now()}
	go every(ctx, interval, func() { h.take(ctx) })
	return h
}

// take takes a heap profile and keeps it if it is the largest so far.
func (h *peakHeap) take(ctx context.Context) {
	data, err := h.op.HeapProfile(ctx, false)
	if err != nil {
		return
	}
	_, inuse, err := heapTop(data, 0)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if inuse > h.inuse {
		h.profile, h.inuse, h.at = data, inuse, time.Since(h.start)
	}
}

// write writes the largest profile to path and returns its n top functions,
// the heap in use it shows, in bytes, and when it was taken.
func (h *peakHeap) write(path string, n int) ([]HeapEntry, int64, time.Duration, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.profile == nil {
		return nil, 0, 0, fmt.Errorf("no heap profile was taken")
	}
	if err := os.WriteFile(path, h.profile, 0o644); err != nil {
		return nil, 0, 0, err
	}
	top, inuse, err := heapTop(h.profile, n)
	return top, inuse, h.at, err
}

// startCPUProfile profiles the operator's CPU for d, into path, and returns
// a function that waits for the profile and returns its error. With d 0 it
// profiles nothing.
func startCPUProfile(ctx context.Context, op *localrun.Operator, d time.Duration, path string) func() error {
	if d <= 0 {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		done <- writeProfile(ctx, fmt.Sprintf("%s/profile?seconds=%d", op.PprofURL, int(d.Seconds())), path)
	}()
	return func() error {
		if err := <-done; err != nil {
			return err
		}
		fmt.Printf("    CPU profile in %s\n", path)
		return nil
	}
}

// writeProfile fetches the profile at url and writes it to path.
func writeProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("failed to fetch %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("failed to fetch %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("failed to fetch %s: %w", url, err)
	}
	return os.WriteFile(path, data, 0o644)
}
