package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"

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
// functions that allocated the most heap still in use.
func heapProfile(ctx context.Context, op *localrun.Operator, path string, n int) ([]HeapEntry, error) {
	data, err := op.HeapProfile(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return nil, err
	}
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("failed to parse the heap profile: %w", err)
	}
	inuse := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "inuse_space" })
	if inuse < 0 {
		return nil, fmt.Errorf("the heap profile has no inuse_space")
	}
	byFunction := map[string]int64{}
	for _, s := range p.Sample {
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
	return top[:min(n, len(top))], nil
}
