package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"example.com/memcached-operator/test/internal/localrun"
)

// The steps that the operator's scenario and another operator's share.

// createMemcacheds creates the N Memcacheds, with only spec.size and the
// fields of extraSpec set so that any operator of the same group and kind
// takes them, on cfg.Parallel clients, and returns when each was created.
func createMemcacheds(ctx context.Context, cfg config, c client.Client, extraSpec map[string]any) ([]time.Time, error) {
	fmt.Printf("==> Creating %d Memcacheds of size %d in %d namespaces\n", cfg.N, cfg.Size, cfg.Namespaces)
	created := make([]time.Time, cfg.N)
	err := parallel(cfg.N, cfg.Parallel, func(i int) error {
		n, ns := name(cfg, i)
		created[i] = time.Now()
		return c.Create(ctx, newMemcached(n, ns, int64(cfg.Size), extraSpec))
	})
	return created, err
}

// newMemcached returns a Memcached of the given size, with the fields of
// extraSpec added to its spec.
func newMemcached(name, namespace string, size int64, extraSpec map[string]any) *unstructured.Unstructured {
	spec := map[string]any{"size": size}
	maps.Copy(spec, extraSpec)
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
		"metadata": map[string]any{"name": name, "namespace": namespace},
		"spec":     spec,
	}}
}

// podsWanted is how many pods each Memcached asks for.
func podsWanted(cfg config) map[types.NamespacedName]int {
	want := make(map[types.NamespacedName]int, cfg.N)
	for i := range cfg.N {
		n, ns := name(cfg, i)
		want[types.NamespacedName{Namespace: ns, Name: n}] = cfg.Size
	}
	return want
}

// Latency is when each Memcached reached a condition.
type Latency struct {
	// Seconds is from the first create until every Memcached reached it.
	Seconds float64 `json:"seconds"`
	// P50 and P99 are of the time from each Memcached's create.
	P50 float64 `json:"p50Seconds"`
	P99 float64 `json:"p99Seconds"`
	// At is, sorted, when each reached it, in seconds from the first create.
	At []float64 `json:"atSeconds"`
	// Created is when the last Memcached was created, in seconds from the
	// first create: how long the clients took to create them all.
	Created float64 `json:"createdSeconds"`
}

// latency computes a Latency from when each Memcached was created and
// reached the condition.
func latency(cfg config, start time.Time, created []time.Time, reached map[types.NamespacedName]time.Time) Latency {
	l := Latency{At: make([]float64, 0, cfg.N)}
	fromCreate := make([]float64, 0, cfg.N)
	for i := range cfg.N {
		n, ns := name(cfg, i)
		at := reached[types.NamespacedName{Namespace: ns, Name: n}]
		fromCreate = append(fromCreate, at.Sub(created[i]).Seconds())
		l.At = append(l.At, at.Sub(start).Seconds())
		l.Created = max(l.Created, created[i].Sub(start).Seconds())
	}
	slices.Sort(fromCreate)
	slices.Sort(l.At)
	if len(l.At) > 0 {
		l.Seconds = l.At[len(l.At)-1]
	}
	l.P50, l.P99 = percentile(fromCreate, 0.50), percentile(fromCreate, 0.99)
	return l
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// Deletion is how deleting every Memcached went.
type Deletion struct {
	Seconds float64 `json:"seconds"`
	// GoneAt is when the last object of each kind was gone, in seconds from
	// the first delete.
	GoneAt map[string]float64 `json:"goneAtSeconds"`
}

// deleteMemcacheds deletes every Memcached, waits until no object made for
// them is left, and returns what that cost, from the counters of metrics (nil
// for none) and of the processes pids.
func deleteMemcacheds(ctx context.Context, cfg config, c client.Client, w *watcher,
	metrics *localrun.Operator, pids map[string]int) (Deletion, Phase, error) {
	fmt.Printf("==> Deleting every Memcached\n")
	before, err := measure(ctx, metrics, pids)
	if err != nil {
		return Deletion{}, Phase{}, err
	}
	present := w.objectsLeft()
	start := time.Now()
	if err := parallel(cfg.N, cfg.Parallel, func(i int) error {
		n, ns := name(cfg, i)
		mc := &unstructured.Unstructured{}
		mc.SetAPIVersion("cache.example.com/v1alpha1")
		mc.SetKind("Memcached")
		mc.SetName(n)
		mc.SetNamespace(ns)
		return client.IgnoreNotFound(c.Delete(ctx, mc))
	}); err != nil {
		return Deletion{}, Phase{}, err
	}
	gone, goneAt, err := w.waitGone(ctx, present, start, phaseTimeout)
	if err != nil {
		return Deletion{}, Phase{}, err
	}
	after, err := measure(ctx, metrics, pids)
	if err != nil {
		return Deletion{}, Phase{}, err
	}
	fmt.Printf("    everything gone in %.1fs\n", gone.Seconds())
	return Deletion{Seconds: gone.Seconds(), GoneAt: goneAt}, phaseBetween(before, after, gone), nil
}

// processPIDs returns the PIDs of the cluster's components and of the
// operator under test.
func processPIDs(cluster interface{ PIDs() map[string]int }, operatorPID int) map[string]int {
	pids := cluster.PIDs()
	pids["operator"] = operatorPID
	return pids
}
