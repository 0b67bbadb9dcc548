package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"example.com/memcached-operator/test/internal/localrun"
)

// AnchorResult is what another operator of the same group and kind, given by
// --anchor, measured on the same workload on a fresh cluster: Memcacheds with
// only spec.size set. Operators differ in what their status says, so a
// Memcached counts as converged once it has spec.size ready pods, the
// criterion PodsReady applies to this operator too.
type AnchorResult struct {
	Binary string `json:"binary"`
	// Metrics is false when the anchor's metrics could not be scraped over
	// plain HTTP: then its requests are not counted.
	Metrics bool `json:"metrics"`
	// Converge: from the first create until every Memcached had its pods
	// ready.
	Converge    Phase    `json:"converge"`
	PodsReady   Latency  `json:"podsReady"`
	WritesPerCR float64  `json:"writesPerCR"`
	Quiet       Phase    `json:"quiet"`
	Delete      Phase    `json:"delete"`
	Deletion    Deletion `json:"deletion"`
	PeakRSSMiB  float64  `json:"peakRSSMiB"`
}

// runAnchor runs the anchor operator, with its CRD and administrator
// credentials (its RBAC is its own business), through creating, a quiet
// window and deleting.
func runAnchor(ctx context.Context, cfg config) (*AnchorResult, error) {
	cluster, c, _, err := startCluster(ctx, cfg, "anchor")
	if err != nil {
		return nil, err
	}
	defer cluster.Close()

	fmt.Printf("==> Installing %s and starting %s\n", cfg.AnchorCRD, cfg.Anchor)
	if err := localrun.InstallCRDs(ctx, cluster.Config, cfg.AnchorCRD); err != nil {
		return nil, err
	}
	op, err := localrun.Start(ctx, localrun.Config{Binary: cfg.Anchor, Kubeconfig: cluster.Kubeconfig,
		LogPath: filepath.Join(cluster.DataDir, "anchor.log"), Env: cfg.AnchorEnv, Args: cfg.AnchorArgs})
	if err != nil {
		return nil, err
	}
	// Its exit status is its own business once measured.
	defer func() { _ = op.Stop() }()
	r := &AnchorResult{Binary: cfg.Anchor}
	metrics := op
	if _, _, err := scrape(ctx, op); err != nil {
		fmt.Printf("    its metrics cannot be scraped (%v): requests are not counted\n", err)
		metrics = nil
	}
	r.Metrics = metrics != nil
	w, err := startWatcher(ctx, cluster.Config, watchOptions{AnyOwner: true, Namespaces: namespaces(cfg)})
	if err != nil {
		return nil, err
	}
	if err := warmUpGarbageCollector(ctx, c, w, cfg.AnchorSpec); err != nil {
		return nil, err
	}
	pids := processPIDs(cluster, op.PID())

	before, err := measure(ctx, metrics, pids)
	if err != nil {
		return nil, err
	}
	w.pods.begin(podsWanted(cfg))
	start := time.Now()
	created, err := createMemcacheds(ctx, cfg, c, cfg.AnchorSpec)
	if err != nil {
		return nil, err
	}
	ready, err := w.pods.wait(ctx)
	if err != nil {
		return nil, err
	}
	converged := time.Since(start)
	after, err := measure(ctx, metrics, pids)
	if err != nil {
		return nil, err
	}
	r.Converge = phaseBetween(before, after, converged)
	r.PodsReady = latency(cfg, start, created, ready)
	r.WritesPerCR = r.Converge.Writes / float64(cfg.N)
	fmt.Printf("    every Memcached had its pods ready in %.1fs\n", converged.Seconds())

	fmt.Printf("==> Quiet window of %s\n", cfg.Quiet)
	before = after
	select {
	case <-time.After(cfg.Quiet):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if after, err = measure(ctx, metrics, pids); err != nil {
		return nil, err
	}
	r.Quiet = phaseBetween(before, after, cfg.Quiet)

	if r.Deletion, r.Delete, err = deleteMemcacheds(ctx, cfg, c, w, metrics, pids); err != nil {
		return nil, err
	}
	status, err := procStatus(op.PID())
	if err != nil {
		return nil, err
	}
	r.PeakRSSMiB = mib(status.VmHWM)
	return r, nil
}
