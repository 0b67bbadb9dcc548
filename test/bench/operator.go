package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
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
	Converge     Phase   `json:"converge"`
	LatencyP50   float64 `json:"latencyP50Seconds"`
	LatencyP99   float64 `json:"latencyP99Seconds"`
	WritesPerCR  float64 `json:"writesPerCR"`
	StatusWrites float64 `json:"statusWrites"`
	// StatusChanges is how many Memcached status changes were watched;
	// UnchangedStatusWrites = StatusWrites - StatusChanges.
	StatusChanges         float64 `json:"statusChanges"`
	UnchangedStatusWrites float64 `json:"unchangedStatusWrites"`
	Quiet                 Phase   `json:"quiet"`
	// Rollout: from the first spec change until every Memcached has rolled
	// its pods and is Available again.
	Rollout            Phase     `json:"rollout"`
	RolloutWritesPerCR float64   `json:"rolloutWritesPerCR"`
	Delete             Phase     `json:"delete"`
	PeakRSSMiB         float64   `json:"peakRSSMiB"`
	PeakHeapMiB        float64   `json:"peakHeapInUseMiB"`
	Available          []float64 `json:"availableAtSeconds"`
	// HeapTop are the functions that allocated the most heap in use once
	// every Memcached settled.
	HeapTop           []HeapEntry `json:"heapTop"`
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
	w, err := startWatcher(ctx, cluster.Config, true)
	if err != nil {
		return nil, err
	}
	if err := warmUpGarbageCollector(ctx, c, w); err != nil {
		return nil, err
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	samples := startSampler(sampleCtx, op)
	r := &OperatorResult{}

	// Converge.
	fmt.Printf("==> Creating %d Memcacheds of size %d in %d namespaces\n", cfg.N, cfg.Size, cfg.Namespaces)
	before, _, err := scrape(ctx, op)
	if err != nil {
		return nil, err
	}
	statusChangesBefore := w.statusChangeCount()
	if err := w.beginMemcacheds(ctx, cfg.N, available); err != nil {
		return nil, err
	}
	start := time.Now()
	created := make([]time.Time, cfg.N)
	if err := parallel(cfg.N, cfg.Parallel, func(i int) error {
		n, ns := name(cfg, i)
		created[i] = time.Now()
		return c.Create(ctx, &cachev1alpha1.Memcached{
			ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns},
			Spec:       cachev1alpha1.MemcachedSpec{Size: int32(cfg.Size)},
		})
	}); err != nil {
		return nil, err
	}
	reached, err := w.memcacheds.wait(ctx)
	if err != nil {
		return nil, err
	}
	converged := time.Since(start)
	after, _, err := scrape(ctx, op)
	if err != nil {
		return nil, err
	}
	r.Converge = phaseBetween(before, after, converged)
	r.WritesPerCR = r.Converge.Writes / float64(cfg.N)
	r.StatusWrites = r.Converge.Requests["PATCH 200"]
	r.StatusChanges = float64(w.statusChangeCount() - statusChangesBefore)
	r.UnchangedStatusWrites = max(0, r.StatusWrites-r.StatusChanges)
	r.recordAvailable(cfg, start, created, reached)
	fmt.Printf("    converged in %.1fs: %.0f requests, %.1f writes per Memcached\n", converged.Seconds(), r.Converge.Total, r.WritesPerCR)

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
	before, _, err = scrape(ctx, op)
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(cfg.Quiet):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	after, _, err = scrape(ctx, op)
	if err != nil {
		return nil, err
	}
	r.Quiet = phaseBetween(before, after, cfg.Quiet)
	fmt.Printf("    %.0f requests, %.0f writes\n", r.Quiet.Total, r.Quiet.Writes)

	// A spec change on every Memcached.
	fmt.Printf("==> Changing memoryMB on every Memcached\n")
	before = after
	if err := w.beginMemcacheds(ctx, cfg.N, rolledOut); err != nil {
		return nil, err
	}
	start = time.Now()
	if err := parallel(cfg.N, cfg.Parallel, func(i int) error {
		n, ns := name(cfg, i)
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"memoryMB":96}}`))
		return c.Patch(ctx, &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns}}, patch)
	}); err != nil {
		return nil, err
	}
	if _, err := w.memcacheds.wait(ctx); err != nil {
		return nil, err
	}
	rolled := time.Since(start)
	after, _, err = scrape(ctx, op)
	if err != nil {
		return nil, err
	}
	r.Rollout = phaseBetween(before, after, rolled)
	r.RolloutWritesPerCR = r.Rollout.Writes / float64(cfg.N)
	fmt.Printf("    rolled out in %.1fs: %.1f writes per Memcached\n", rolled.Seconds(), r.RolloutWritesPerCR)

	if r.Delete, err = deleteAll(ctx, cfg, c, w, op, after); err != nil {
		return nil, err
	}

	rss, err := peakRSS(op.PID())
	if err != nil {
		return nil, err
	}
	r.PeakRSSMiB = rss / (1 << 20)
	var heap float64
	r.RequestsPerSecond, heap = samples.snapshot()
	r.PeakHeapMiB = heap / (1 << 20)
	return r, nil
}

// deleteAll deletes every Memcached and measures the phase until all their
// objects are gone; before are the operator's metrics at its start.
func deleteAll(ctx context.Context, cfg config, c client.Client, w *watcher, op *localrun.Operator, before counters) (Phase, error) {
	fmt.Printf("==> Deleting every Memcached\n")
	start := time.Now()
	if err := parallel(cfg.N, cfg.Parallel, func(i int) error {
		n, ns := name(cfg, i)
		return client.IgnoreNotFound(c.Delete(ctx, &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns}}))
	}); err != nil {
		return Phase{}, err
	}
	gone, err := w.waitGone(ctx, start, 30*time.Minute)
	if err != nil {
		return Phase{}, err
	}
	after, _, err := scrape(ctx, op)
	if err != nil {
		return Phase{}, err
	}
	fmt.Printf("    everything gone in %.1fs\n", gone.Seconds())
	return phaseBetween(before, after, gone), nil
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// warmUpGarbageCollector creates and deletes one Memcached and waits until its
// Deployment is gone. kube-controller-manager's garbage collector starts
// watching a resource installed after it started only at its next discovery
// resync (every 30 s); in a real cluster the CRD is installed long before.
func warmUpGarbageCollector(ctx context.Context, c client.Client, w *watcher) error {
	fmt.Printf("==> Waiting for the garbage collector to watch Memcacheds\n")
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Name: "warm-up", Namespace: namespace(0)}}
	if err := c.Create(ctx, mc); err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := w.managedObjects(ctx)
		return n > 0, err
	}); err != nil {
		return fmt.Errorf("the warm-up Memcached's objects did not appear: %w", err)
	}
	if err := c.Delete(ctx, mc); err != nil {
		return err
	}
	_, err := w.waitGone(ctx, time.Now(), 2*time.Minute)
	return err
}

// recordAvailable records when each Memcached became Available, from the
// start of the phase and from its own creation.
func (r *OperatorResult) recordAvailable(cfg config, start time.Time, created []time.Time, reached map[client.ObjectKey]time.Time) {
	latencies := make([]float64, 0, cfg.N)
	for i := range cfg.N {
		n, ns := name(cfg, i)
		at := reached[client.ObjectKey{Namespace: ns, Name: n}]
		latencies = append(latencies, at.Sub(created[i]).Seconds())
		r.Available = append(r.Available, at.Sub(start).Seconds())
	}
	slices.Sort(latencies)
	slices.Sort(r.Available)
	r.LatencyP50, r.LatencyP99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
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
	if r.HeapTop, err = heapProfile(ctx, op, path, 12); err != nil {
		return err
	}
	fmt.Printf("    heap profile in %s\n", path)
	return nil
}
