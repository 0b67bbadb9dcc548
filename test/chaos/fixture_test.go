package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/faultproxy"
	"example.com/memcached-operator/test/internal/invariants"
	"example.com/memcached-operator/test/internal/localrun"
	"example.com/memcached-operator/test/internal/simcluster"
)

const repoRoot = "../.."

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cachev1alpha1.AddToScheme(scheme))
}

// fixture is a simulated cluster of a test's own, with the operator
// installed as config/default installs it.
type fixture struct {
	t       *testing.T
	dir     string
	cluster *simcluster.Cluster
	// c acts as the cluster administrator.
	c client.Client
	// kubeconfig authenticates as the operator's ServiceAccount.
	kubeconfig string
	// logs are the logs of every operator process started.
	logs []string

	mu sync.Mutex
	// templateChanges counts, by Memcached, the spec changes that asked for
	// new pods, so that replaced pods can be told from pods replaced for
	// nothing.
	templateChanges map[client.ObjectKey]int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	g := NewWithT(t)
	f := &fixture{t: t, dir: filepath.Join(outDir, t.Name()), templateChanges: map[client.ObjectKey]int{}}
	g.Expect(os.RemoveAll(f.dir)).To(Succeed())
	var err error
	f.cluster, err = simcluster.Start(t.Context(), simcluster.Options{BinDir: binDir, DataDir: filepath.Join(f.dir, "cluster")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = f.cluster.Close() })
	// The checks read every object at once: no client-side throttling.
	cfg := rest.CopyConfig(f.cluster.Config)
	cfg.QPS, cfg.Burst = 1000, 2000
	f.c, err = client.New(cfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	f.kubeconfig = filepath.Join(f.dir, "operator.kubeconfig")
	g.Expect(localrun.Install(t.Context(), f.cluster.Config, filepath.Join(binDir, "kubectl"),
		filepath.Join(repoRoot, "config", "default"), f.kubeconfig)).To(Succeed())
	for i := range namespaces {
		g.Expect(f.c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace(i)}})).To(Succeed())
	}
	return f
}

const namespaces = 4

func namespace(i int) string { return fmt.Sprintf("chaos-%d", i) }

// startOperator starts an operator process with the given extra arguments,
// and stops it when the test ends.
func (f *fixture) startOperator(args ...string) *localrun.Operator {
	f.t.Helper()
	log := filepath.Join(f.dir, fmt.Sprintf("operator-%d.log", len(f.logs)))
	op, err := localrun.Start(context.Background(), localrun.Config{Binary: managerBinary, Kubeconfig: f.kubeconfig,
		LogPath: log, Args: args})
	NewWithT(f.t).Expect(err).NotTo(HaveOccurred())
	f.logs = append(f.logs, log)
	f.t.Cleanup(func() { _ = op.Stop() })
	return op
}

// throughProxy points the operator's kubeconfig at url instead of the API
// server, with the same credentials.
func (f *fixture) throughProxy(proxy *faultproxy.Proxy) {
	f.t.Helper()
	g := NewWithT(f.t)
	cfg, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	proxied := &rest.Config{Host: proxy.URL, BearerToken: cfg.BearerToken, TLSClientConfig: rest.TLSClientConfig{CAData: proxy.CAData}}
	f.kubeconfig = filepath.Join(f.dir, "operator-proxied.kubeconfig")
	g.Expect(simcluster.WriteKubeconfig(f.kubeconfig, proxied, "operator")).To(Succeed())
}

// key returns the name and namespace of the i-th Memcached.
func key(i int) client.ObjectKey {
	return client.ObjectKey{Namespace: namespace(i % namespaces), Name: fmt.Sprintf("mc-%04d", i)}
}

// parallel runs do for 0..n-1 on 8 goroutines.
func parallel(n int, do func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				errs[i] = do(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// create creates the Memcacheds from..to-1, of the given size.
func (f *fixture) create(from, to int, size int32) {
	f.t.Helper()
	NewWithT(f.t).Expect(parallel(to-from, func(i int) error {
		k := key(from + i)
		f.mu.Lock()
		f.templateChanges[k] = 0
		f.mu.Unlock()
		return f.c.Create(context.Background(), &cachev1alpha1.Memcached{
			ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name},
			Spec:       cachev1alpha1.MemcachedSpec{Size: size, MinReadySeconds: new(int32(0))},
		})
	})).To(Succeed())
}

// churn changes the Memcacheds from..to-1 as users would: scales some,
// changes the memcached settings of others (new pods), deletes a few and
// creates them again. It retries on conflicts and outages until ctx ends.
func (f *fixture) churn(ctx context.Context, from, to int) error {
	return parallel(to-from, func(i int) error {
		k := key(from + i)
		var last error
		// The API server may be away: try again every second.
		err := wait.PollUntilContextTimeout(ctx, time.Second, 100*time.Second, true, func(ctx context.Context) (bool, error) {
			last = f.change(ctx, k, (from+i)%4)
			return last == nil, nil
		})
		if err != nil && last != nil {
			return last
		}
		return err
	})
}

func (f *fixture) change(ctx context.Context, k client.ObjectKey, how int) error {
	mc := &cachev1alpha1.Memcached{}
	if err := f.c.Get(ctx, k, mc); err != nil {
		return err
	}
	patch := client.MergeFrom(mc.DeepCopy())
	switch how {
	case 0:
		mc.Spec.Size = 1 + rand.Int32N(3)
	case 1:
		mc.Spec.Threads = 1 + rand.Int32N(8)
		if mc.Spec.Threads == 4 {
			mc.Spec.Threads = 5
		}
	case 2:
		if err := f.c.Delete(ctx, mc); err != nil {
			return client.IgnoreNotFound(err)
		}
		f.mu.Lock()
		f.templateChanges[k] = 0
		f.mu.Unlock()
		// Created again below, under the same name, once the old one is gone.
		return f.recreate(ctx, k)
	default:
		return nil
	}
	if err := f.c.Patch(ctx, mc, patch); err != nil {
		return err
	}
	if how == 1 {
		f.mu.Lock()
		f.templateChanges[k]++
		f.mu.Unlock()
	}
	return nil
}

// recreate creates the Memcached k again, once the old one is gone and the
// API server takes it. It gives up after 2 minutes: no outage lasts that
// long.
func (f *fixture) recreate(ctx context.Context, k client.ObjectKey) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		last = f.c.Create(ctx, &cachev1alpha1.Memcached{
			ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name},
			Spec:       cachev1alpha1.MemcachedSpec{Size: 2, MinReadySeconds: new(int32(0))},
		})
		return last == nil, nil // the old one may still be being deleted
	})
	if err != nil && last != nil {
		return fmt.Errorf("failed to create %s again: %w", k, last)
	}
	return err
}

// hold lets a fault last d, or until ctx ends: it returns ctx's error then.
func hold(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// settle waits until the invariants hold and returns how long that took
// from since; it fails the test if they do not within the default timeout.
func (f *fixture) settle(since time.Time) time.Duration {
	f.t.Helper()
	var violations []string
	logged := time.Now()
	ok := NewWithT(f.t).Eventually(func(g Gomega) {
		var err error
		violations, err = invariants.Check(context.Background(), f.c)
		g.Expect(err).NotTo(HaveOccurred())
		violations = append(violations, f.unexplainedRevisions()...)
		if len(violations) > 0 && time.Since(logged) > 10*time.Second {
			f.t.Logf("After %s, %d violations, such as %q", time.Since(since).Round(time.Second), len(violations), violations[0])
			logged = time.Now()
		}
		g.Expect(violations).To(BeEmpty())
	}).Should(Succeed())
	if !ok {
		f.t.Logf("violations left: %d", len(violations))
	}
	return time.Since(since)
}

// unexplainedRevisions returns the Memcacheds whose pods were replaced more
// often than their spec asked for.
func (f *fixture) unexplainedRevisions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var found []string
	for k, changes := range f.templateChanges {
		mc := &cachev1alpha1.Memcached{}
		if err := f.c.Get(context.Background(), k, mc); err != nil {
			continue
		}
		revisions, err := invariants.Revisions(context.Background(), f.c, mc)
		if err == nil && revisions > 1+changes {
			found = append(found, fmt.Sprintf("%s: %d pod templates for %d changes", k, revisions, changes))
		}
	}
	slices.Sort(found)
	return found
}

// startSettled starts an operator, creates the Memcacheds 0..n-1 of size 2
// and waits until they have settled.
func (f *fixture) startSettled(n int) *localrun.Operator {
	f.t.Helper()
	op := f.startOperator()
	f.create(0, n, 2)
	f.settle(time.Now())
	return op
}

// expectCalm checks that op has fallen quiet and logged no error but
// transient ones and those in also.
func (f *fixture) expectCalm(op *localrun.Operator, also ...string) {
	f.t.Helper()
	f.expectQuiet(op)
	f.expectNoUnexpectedErrors(also...)
}

// expectQuiet checks that op has no request loop: a reconcile of every
// Memcached, converged, makes no write. Each Memcached is touched (an
// annotation, which the operator does not read) to have it reconciled; the
// round counts once op has reconciled at least that many times and is idle.
// A write still under way from the fault, before the round began, fails a
// round but not the check: the round is tried again. A loop fails every
// round.
func (f *fixture) expectQuiet(op *localrun.Operator) {
	f.t.Helper()
	g := NewWithT(f.t)
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(cachev1alpha1.GroupVersion.WithKind("MemcachedList"))
	g.Expect(f.c.List(f.t.Context(), list)).To(Succeed())
	round := 0
	g.Eventually(func(g Gomega) {
		round++
		g.Eventually(func() bool { return idle(f.t, op) }, time.Minute).Should(BeTrue(), "the operator does not fall idle")
		before, reconciled := writes(f.t, op), reconciles(f.t, op)
		g.Expect(parallel(len(list.Items), func(i int) error {
			patch := client.RawPatch(types.MergePatchType,
				fmt.Appendf(nil, `{"metadata":{"annotations":{"chaos.test/touched":"%d"}}}`, round))
			return client.IgnoreNotFound(f.c.Patch(f.t.Context(), &list.Items[i], patch))
		})).To(Succeed())
		g.Eventually(func() bool {
			return reconciles(f.t, op) >= reconciled+float64(len(list.Items)) && idle(f.t, op)
		}, time.Minute).Should(BeTrue(), "the operator did not reconcile every Memcached touched")
		g.Expect(writes(f.t, op)).To(Equal(before), "a reconcile of a converged Memcached wrote")
	}, 3*time.Minute, time.Second).Should(Succeed(), "the operator keeps writing")
}

// expectNoUnexpectedErrors checks the logs of every operator process; also
// are errors the test's fault explains.
func (f *fixture) expectNoUnexpectedErrors(also ...string) {
	f.t.Helper()
	for _, log := range f.logs {
		found, err := invariants.UnexpectedErrors(log, also...)
		NewWithT(f.t).Expect(err).NotTo(HaveOccurred())
		NewWithT(f.t).Expect(found).To(BeEmpty(), "errors in %s", log)
	}
}

// requests returns the API requests op has sent.
func requests(t *testing.T, op *localrun.Operator) float64 {
	return sumMetric(t, op, "rest_client_requests_total", nil)
}

// reconciles returns how many reconciles of Memcacheds op has completed.
func reconciles(t *testing.T, op *localrun.Operator) float64 {
	return sumMetric(t, op, "controller_runtime_reconcile_total", map[string]string{"controller": "memcached"})
}

// idle tells whether op has no reconcile under way and none ready to start.
func idle(t *testing.T, op *localrun.Operator) bool {
	return sumMetric(t, op, "workqueue_depth", map[string]string{"name": "memcached"}) == 0 &&
		sumMetric(t, op, "controller_runtime_active_workers", map[string]string{"controller": "memcached"}) == 0
}

// writes returns the API requests op has sent that can change something.
func writes(t *testing.T, op *localrun.Operator) float64 {
	var n float64
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		n += sumMetric(t, op, "rest_client_requests_total", map[string]string{"method": method})
	}
	return n
}

// sumMetric adds the samples of the counter or gauge name whose labels
// include labels.
func sumMetric(t *testing.T, op *localrun.Operator, name string, labels map[string]string) float64 {
	t.Helper()
	metrics, err := op.Metrics(context.Background())
	if err != nil {
		t.Fatalf("Failed to read the operator's metrics: %v", err)
	}
	var total float64
samples:
	for _, m := range metrics[name].GetMetric() {
		for key, value := range labels {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == key && l.GetValue() == value }) {
				continue samples
			}
		}
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

// percentile returns the p-th percentile of durations, in seconds.
func percentile(durations []time.Duration, p float64) float64 {
	if len(durations) == 0 {
		return 0
	}
	sorted := slices.Clone(durations)
	slices.Sort(sorted)
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Seconds()
}
