package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/invariants"
	"example.com/memcached-operator/test/internal/localrun"
)

// OperatorResult is what the operator scenario measured.
type OperatorResult struct {
	// Converge: from the first create until every Memcached is Available
	// with all its pods ready, at its generation.
	Converge Phase `json:"converge"`
	// Available is when each Memcached reported itself Available; PodsReady
	// when it first had all its pods ready, as measured for any operator.
	Available   Latency `json:"available"`
	PodsReady   Latency `json:"podsReady"`
	WritesPerCR float64 `json:"writesPerCR"`
	// PatchesOK are the operator's PATCH requests answered 200 while
	// converging: status writes and updates of the servers ConfigMaps.
	PatchesOK float64 `json:"patchesOK"`
	// StatusChanges and ConfigMapChanges are how many Memcached status
	// changes and servers ConfigMap changes were watched; the PATCHes that
	// changed nothing are PatchesOK minus both.
	StatusChanges    float64 `json:"statusChanges"`
	ConfigMapChanges float64 `json:"configMapChanges"`
	UnchangedPatches float64 `json:"unchangedPatches"`
	Quiet            Phase   `json:"quiet"`
	// Rollout: from the first spec change until every Memcached has rolled
	// its pods and is Available again; nil when not measured.
	Rollout            *Phase   `json:"rollout,omitempty"`
	RolloutWritesPerCR float64  `json:"rolloutWritesPerCR"`
	Delete             Phase    `json:"delete"`
	Deletion           Deletion `json:"deletion"`
	PeakRSSMiB         float64  `json:"peakRSSMiB"`
	// RSSFileMiB is the resident memory mapped from files, mostly the
	// binary's own pages, at the end of the run; PeakAnonMiB the peak of the
	// rest, sampled every second.
	RSSFileMiB  float64 `json:"rssFileMiB"`
	PeakAnonMiB float64 `json:"peakAnonMiB"`
	PeakHeapMiB float64 `json:"peakHeapInUseMiB"`
	// HeapTop are the functions that allocated the most heap in use once
	// every Memcached settled, SettledHeapMiB all of it.
	HeapTop        []HeapEntry `json:"heapTop"`
	SettledHeapMiB float64     `json:"settledHeapMiB"`
	// PeakHeapTop is the same for the largest live heap seen while
	// converging, PeakLiveHeapMiB, PeakLiveHeapAt seconds after the first
	// create.
	PeakHeapTop       []HeapEntry `json:"peakHeapTop"`
	PeakLiveHeapMiB   float64     `json:"peakLiveHeapMiB"`
	PeakLiveHeapAt    float64     `json:"peakLiveHeapAtSeconds"`
	RequestsPerSecond []float64   `json:"requestsPerSecond"`
}

func available(obj client.Object) bool {
	mc := obj.(*cachev1alpha1.Memcached)
	return mc.Status.ObservedGeneration == mc.Generation && mc.Status.ReadyReplicas == mc.Spec.Size &&
		meta.IsStatusConditionTrue(mc.Status.Conditions, cachev1alpha1.ConditionAvailable)
}

// settled is available with the rollout reported complete.
func settled(obj client.Object) bool {
	mc := obj.(*cachev1alpha1.Memcached)
	return available(obj) && meta.IsStatusConditionFalse(mc.Status.Conditions, cachev1alpha1.ConditionProgressing)
}

func rolledOut(obj client.Object) bool {
	return obj.(*cachev1alpha1.Memcached).Generation >= 2 && settled(obj)
}

func runOperator(ctx context.Context, cfg config) (*OperatorResult, error) {
	cluster, c, _, err := startCluster(ctx, cfg, "operator")
	if err != nil {
		return nil, err
	}
	defer cluster.Close()

	fmt.Printf("==> Installing and starting the operator (--max-concurrent-reconciles=%d)\n", cfg.Workers)
	kubeconfig := filepath.Join(cluster.DataDir, "operator.kubeconfig")
	if err := localrun.Install(ctx, cluster.Config, cfg.Kubectl, filepath.Join(cfg.Repo, "config", "default"), kubeconfig); err != nil {
		return nil, err
	}
	env, err := memoryLimitEnv(cfg.MemoryLimit)
	if err != nil {
		return nil, err
	}
	op, err := localrun.Start(ctx, localrun.Config{
		Binary: cfg.Manager, Kubeconfig: kubeconfig, LogPath: filepath.Join(cluster.DataDir, "operator.log"), Env: env, Pprof: true,
		Args: []string{fmt.Sprintf("--max-concurrent-reconciles=%d", cfg.Workers), "--zap-log-level=" + cfg.LogLevel}})
	if err != nil {
		return nil, err
	}
	defer func() { _ = op.Stop() }()
	w, err := startWatcher(ctx, cluster.Config, watchOptions{Memcacheds: true, Namespaces: namespaces(cfg)})
	if err != nil {
		return nil, err
	}
	if err := warmUpGarbageCollector(ctx, c, w, nil); err != nil {
		return nil, err
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	samples := startSampler(sampleCtx, op)
	pids := processPIDs(cluster, op.PID())
	r := &OperatorResult{}

	if err := r.converge(ctx, cfg, c, w, op, pids); err != nil {
		return nil, err
	}

	// Quiet window, once every Memcached also reports its rollout complete.
	if err := w.beginMemcacheds(ctx, cfg.N, settled); err != nil {
		return nil, err
	}
	if _, err := w.memcacheds.wait(ctx); err != nil {
		return nil, err
	}
	if err := r.inspectSettled(ctx, cfg, c, op); err != nil {
		return nil, err
	}
	fmt.Printf("==> Quiet window of %s\n", cfg.Quiet)
	before, err := measure(ctx, op, pids)
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(cfg.Quiet):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	after, err := measure(ctx, op, pids)
	if err != nil {
		return nil, err
	}
	r.Quiet = phaseBetween(before, after, cfg.Quiet)
	fmt.Printf("    %.0f requests, %.0f writes\n", r.Quiet.Total, r.Quiet.Writes)

	if cfg.Rollout {
		if err := r.rollout(ctx, cfg, c, w, op, pids); err != nil {
			return nil, err
		}
	}

	if r.Deletion, r.Delete, err = deleteMemcacheds(ctx, cfg, c, w, op, pids); err != nil {
		return nil, err
	}

	status, err := procStatus(op.PID())
	if err != nil {
		return nil, err
	}
	r.PeakRSSMiB, r.RSSFileMiB = mib(status.VmHWM), mib(status.RssFile)
	var heap float64
	r.RequestsPerSecond, heap, r.PeakAnonMiB = samples.snapshot()
	r.PeakHeapMiB = heap / (1 << 20)
	return r, nil
}

// converge creates the Memcacheds and measures until every one is Available.
func (r *OperatorResult) converge(ctx context.Context, cfg config, c client.Client, w *watcher, op *localrun.Operator, pids map[string]int) error {
	heapCtx, stopHeap := context.WithCancel(ctx)
	defer stopHeap()
	peak := watchPeakHeap(heapCtx, op, 5*time.Second)
	before, err := measure(ctx, op, pids)
	if err != nil {
		return err
	}
	statusBefore, configMapsBefore := w.changeCounts()
	if err := w.beginMemcacheds(ctx, cfg.N, available); err != nil {
		return err
	}
	w.pods.begin(podsWanted(cfg))
	cpuProfile := startCPUProfile(ctx, op, cfg.CPUProfile, filepath.Join(cfg.Out, fmt.Sprintf("cpu-n%d.pb.gz", cfg.N)))
	start := time.Now()
	created, err := createMemcacheds(ctx, cfg, c, nil)
	if err != nil {
		return err
	}
	reached, err := w.memcacheds.wait(ctx)
	if err != nil {
		return err
	}
	converged := time.Since(start)
	after, err := measure(ctx, op, pids)
	if err != nil {
		return err
	}
	podsReady, err := w.pods.wait(ctx)
	if err != nil {
		return err
	}
	stopHeap()
	peak.take(ctx) // however short the phase
	r.Converge = phaseBetween(before, after, converged)
	r.Available = latency(cfg, start, created, reached)
	r.PodsReady = latency(cfg, start, created, podsReady)
	r.WritesPerCR = r.Converge.Writes / float64(cfg.N)
	statusAfter, configMapsAfter := w.changeCounts()
	r.PatchesOK = r.Converge.Requests["PATCH 200"]
	r.StatusChanges = float64(statusAfter - statusBefore)
	r.ConfigMapChanges = float64(configMapsAfter - configMapsBefore)
	r.UnchangedPatches = max(0, r.PatchesOK-r.StatusChanges-r.ConfigMapChanges)
	fmt.Printf("    converged in %.1fs: %.0f requests, %.1f writes per Memcached\n", converged.Seconds(), r.Converge.Total, r.WritesPerCR)
	if cfg.CPUProfile > 0 {
		if err := writeProfile(ctx, op.PprofURL+"/allocs", filepath.Join(cfg.Out, fmt.Sprintf("allocs-n%d.pb.gz", cfg.N))); err != nil {
			return err
		}
	}
	if err := cpuProfile(); err != nil {
		return err
	}

	top, inuse, at, err := peak.write(filepath.Join(cfg.Out, fmt.Sprintf("heap-peak-n%d.pb.gz", cfg.N)), 12)
	if err != nil {
		return err
	}
	r.PeakHeapTop, r.PeakLiveHeapMiB, r.PeakLiveHeapAt = top, float64(inuse)/(1<<20), at.Seconds()
	return nil
}

// rollout changes memoryMB on every Memcached and measures until each has
// rolled its pods and is Available again.
func (r *OperatorResult) rollout(ctx context.Context, cfg config, c client.Client, w *watcher, op *localrun.Operator, pids map[string]int) error {
	fmt.Printf("==> Changing memoryMB on every Memcached\n")
	before, err := measure(ctx, op, pids)
	if err != nil {
		return err
	}
	if err := w.beginMemcacheds(ctx, cfg.N, rolledOut); err != nil {
		return err
	}
	start := time.Now()
	if err := parallel(cfg.N, cfg.Parallel, func(i int) error {
		n, ns := name(cfg, i)
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"memoryMB":96}}`))
		return c.Patch(ctx, &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns}}, patch)
	}); err != nil {
		return err
	}
	if _, err := w.memcacheds.wait(ctx); err != nil {
		return err
	}
	rolled := time.Since(start)
	after, err := measure(ctx, op, pids)
	if err != nil {
		return err
	}
	phase := phaseBetween(before, after, rolled)
	r.Rollout = &phase
	r.RolloutWritesPerCR = phase.Writes / float64(cfg.N)
	fmt.Printf("    rolled out in %.1fs: %.1f writes per Memcached\n", rolled.Seconds(), r.RolloutWritesPerCR)
	return nil
}

// warmUpGarbageCollector creates and deletes one Memcached and waits until its
// Deployment is gone. kube-controller-manager's garbage collector starts
// watching a resource installed after it started only at its next discovery
// resync (every 30 s); in a real cluster the CRD is installed long before.
func warmUpGarbageCollector(ctx context.Context, c client.Client, w *watcher, extraSpec map[string]any) error {
	fmt.Printf("==> Waiting for the garbage collector to watch Memcacheds\n")
	mc := newMemcached("warm-up", namespace(0), 1, extraSpec)
	if err := c.Create(ctx, mc); err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		left := w.objectsLeft()
		return left["Deployment"]+left["StatefulSet"] > 0, nil
	}); err != nil {
		return fmt.Errorf("the warm-up Memcached's workload did not appear: %w", err)
	}
	if err := c.Delete(ctx, mc); err != nil {
		return err
	}
	_, _, err := w.waitGone(ctx, w.objectsLeft(), time.Now(), 2*time.Minute)
	return err
}

// memoryLimitEnv passes the operator a container memory limit as its
// Deployment does, through MEMORY_LIMIT in bytes.
func memoryLimitEnv(limit string) ([]string, error) {
	if limit == "" {
		return nil, nil
	}
	q, err := resource.ParseQuantity(limit)
	if err != nil {
		return nil, fmt.Errorf("--memory-limit: %w", err)
	}
	return []string{fmt.Sprintf("MEMORY_LIMIT=%d", q.Value())}, nil
}

// inspectSettled fails when the settled cluster breaks an invariant of
// test/internal/invariants, and records where the operator's heap goes.
func (r *OperatorResult) inspectSettled(ctx context.Context, cfg config, c client.Client, op *localrun.Operator) error {
	violations, err := invariants.Check(ctx, c)
	if err != nil {
		return err
	}
	if len(violations) > 0 {
		return fmt.Errorf("%d invariant violations once settled, such as %q", len(violations), violations[0])
	}
	fmt.Println("    invariants hold")
	path := filepath.Join(cfg.Out, fmt.Sprintf("heap-n%d.pb.gz", cfg.N))
	var inuse int64
	if r.HeapTop, inuse, err = heapProfile(ctx, op, path, 12); err != nil {
		return err
	}
	r.SettledHeapMiB = float64(inuse) / (1 << 20)
	fmt.Printf("    heap profile in %s\n", path)
	return nil
}
