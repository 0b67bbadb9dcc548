// Command bench measures the operator on a simulated cluster: how fast N
// Memcacheds converge, what that costs the API server, what a quiet period,
// a spec change on every Memcached and deleting them all cost, and the
// operator's memory. It measures the same work done with no operator, by a
// client creating the Deployments and Services directly, as the floor the
// cluster itself sets. Each scenario runs on a fresh cluster.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/simcluster"
)

var scheme = apiruntime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cachev1alpha1.AddToScheme(scheme))
}

type config struct {
	N, Size, Namespaces, Parallel, Workers int
	Quiet                                  time.Duration
	// CPUProfile is how long to profile the operator's CPU from the first
	// create; 0 for no profile.
	CPUProfile                          time.Duration
	BinDir, Manager, Out, Kubectl, Repo string
	Baseline, Rollout, Smoke            bool
	LogLevel, MemoryLimit               string
	// Anchor is another operator's binary to measure on the same workload,
	// with its CRD, arguments and environment.
	Anchor, AnchorCRD     string
	AnchorArgs, AnchorEnv stringList
	// AnchorSpec are fields the anchor's CRD requires besides size, added to
	// the spec of every Memcached of the anchor's run.
	AnchorSpec map[string]any
}

// stringList is a flag that may be given more than once.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var cfg config
	flag.IntVar(&cfg.N, "n", 1000, "Number of Memcacheds.")
	flag.IntVar(&cfg.Size, "size", 2, "spec.size of each Memcached.")
	flag.IntVar(&cfg.Namespaces, "namespaces", 10, "Namespaces the Memcacheds are spread over.")
	flag.IntVar(&cfg.Parallel, "parallel", 32, "Parallel clients creating, changing and deleting objects.")
	flag.IntVar(&cfg.Workers, "max-concurrent-reconciles", 16, "The operator's --max-concurrent-reconciles (its default: 16).")
	flag.DurationVar(&cfg.Quiet, "quiet", 120*time.Second, "The quiet window after convergence.")
	flag.StringVar(&cfg.BinDir, "bin-dir", os.Getenv("CONTROL_PLANE_DIR"), "Directory of the control-plane binaries (default $CONTROL_PLANE_DIR).")
	flag.StringVar(&cfg.Repo, "repo", "..", "The repository's root, where config/ and hack/ are (default: the parent of test/, where make runs the benchmark).")
	flag.StringVar(&cfg.Manager, "manager", "../bin/manager", "The operator's binary.")
	flag.StringVar(&cfg.Out, "out", "../bin/bench", "Directory for the JSON report and the charts.")
	flag.StringVar(&cfg.LogLevel, "operator-log-level", "info", "The operator's --zap-log-level; debug logs every status write.")
	flag.StringVar(&cfg.MemoryLimit, "memory-limit", "128Mi", "The memory limit the operator runs under, as config/manager sets it: the operator sets its Go memory limit to 90% of it; empty for none.")
	flag.BoolVar(&cfg.Baseline, "baseline", true, "Also measure the same Deployments and Services created with no operator.")
	flag.BoolVar(&cfg.Rollout, "rollout", true, "Measure a spec change that rolls every Memcached's pods.")
	flag.StringVar(&cfg.Anchor, "anchor", "", "Another operator's binary to measure on the same workload on a fresh cluster, for a side-by-side comparison: "+
		"it must reconcile cache.example.com/v1alpha1 Memcacheds, accept kubebuilder's flags (--kubeconfig, --leader-elect, --metrics-bind-address, --metrics-secure, --health-probe-bind-address) "+
		"and name its pods after the Memcached (\"<name>-...\"). It runs with administrator credentials.")
	flag.StringVar(&cfg.AnchorCRD, "anchor-crd", "", "The anchor's CRD file (default: this operator's, config/crd/bases).")
	flag.Var(&cfg.AnchorArgs, "anchor-arg", "An argument for the anchor; may be repeated.")
	flag.Var(&cfg.AnchorEnv, "anchor-env", "A NAME=value for the anchor's environment; may be repeated.")
	anchorSpec := flag.String("anchor-spec", "{}", "Fields, as a JSON object, added to the spec of the anchor's Memcacheds, where its CRD requires more than size.")
	flag.DurationVar(&cfg.CPUProfile, "cpu-profile", 0, "Profile the operator's CPU for this long from the first create, into cpu-n<N>.pb.gz, "+
		"and write its allocations from its start until every Memcached is Available into allocs-n<N>.pb.gz; 0 for neither.")
	flag.BoolVar(&cfg.Smoke, "smoke", false, "Exit non-zero unless every Memcached converged, the quiet window had no write and there was no conflict.")
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	cfg.Kubectl = filepath.Join(cfg.BinDir, "kubectl")
	if err := json.Unmarshal([]byte(*anchorSpec), &cfg.AnchorSpec); err != nil {
		fmt.Fprintf(os.Stderr, "bench: --anchor-spec: %v\n", err)
		os.Exit(2)
	}
	if cfg.AnchorCRD == "" {
		cfg.AnchorCRD = filepath.Join(cfg.Repo, "config", "crd", "bases", "cache.example.com_memcacheds.yaml")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	report := Report{
		N: cfg.N, Size: cfg.Size, Namespaces: cfg.Namespaces, Parallel: cfg.Parallel, Workers: cfg.Workers,
		MemoryLimit:  cmp.Or(cfg.MemoryLimit, "none"),
		QuietSeconds: cfg.Quiet.Seconds(), Cores: runtime.NumCPU(), Versions: versions(cfg.Repo),
	}
	op, err := runOperator(ctx, cfg)
	if err != nil {
		return fmt.Errorf("operator scenario: %w", err)
	}
	report.Operator = op
	if cfg.Baseline {
		base, err := runBaseline(ctx, cfg)
		if err != nil {
			return fmt.Errorf("baseline scenario: %w", err)
		}
		report.Baseline = base
	}
	var anchorErr error
	if cfg.Anchor != "" {
		// A failing anchor does not lose what was measured before it.
		if report.Anchor, anchorErr = runAnchor(ctx, cfg); anchorErr != nil {
			anchorErr = fmt.Errorf("anchor scenario: %w", anchorErr)
		}
	}
	report.evaluate()
	if err := report.write(cfg.Out); err != nil {
		return errors.Join(anchorErr, err)
	}
	if anchorErr != nil {
		return anchorErr
	}
	if err := writeScaling(cfg.Out); err != nil {
		return err
	}
	fmt.Println(report.markdown())
	if cfg.Smoke {
		if problems := report.smokeProblems(); len(problems) > 0 {
			return fmt.Errorf("smoke check failed: %v", problems)
		}
		fmt.Println("Smoke check passed: every Memcached converged, no write in the quiet window, no conflict.")
	}
	return nil
}

// startCluster starts a fresh simulated cluster and returns it with a client
// that counts its requests.
// Its state and logs are kept in the output directory, under scenario.
func startCluster(ctx context.Context, cfg config, scenario string) (*simcluster.Cluster, client.Client, *atomic.Int64, error) {
	dataDir := filepath.Join(cfg.Out, scenario)
	fmt.Printf("==> Starting a fresh simulated cluster (state and logs in %s)\n", dataDir)
	if err := os.RemoveAll(dataDir); err != nil {
		return nil, nil, nil, err
	}
	cluster, err := simcluster.Start(ctx, simcluster.Options{BinDir: cfg.BinDir, DataDir: dataDir, Nodes: nodes(cfg)})
	if err != nil {
		return nil, nil, nil, err
	}
	requests := &atomic.Int64{}
	clientConfig := rest.CopyConfig(cluster.Config)
	clientConfig.QPS, clientConfig.Burst = 5000, 10000
	clientConfig.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			requests.Add(1)
			return next.RoundTrip(req)
		})
	})
	c, err := client.New(clientConfig, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, nil, errors.Join(err, cluster.Close())
	}
	for i := range cfg.Namespaces {
		ns := &corev1.Namespace{}
		ns.Name = namespace(i)
		if err := c.Create(ctx, ns); err != nil {
			return nil, nil, nil, errors.Join(err, cluster.Close())
		}
	}
	return cluster, c, requests, nil
}

// nodes returns how many fake nodes hold every pod of the benchmark, with one
// more per Memcached while it rolls out, and at least the default three.
func nodes(cfg config) int {
	return max(3, (cfg.N*(cfg.Size+1)+simcluster.PodsPerNode-1)/simcluster.PodsPerNode)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func namespace(i int) string { return fmt.Sprintf("bench-%02d", i) }

// namespaces returns the benchmark's namespaces.
func namespaces(cfg config) []string {
	all := make([]string, 0, cfg.Namespaces)
	for i := range cfg.Namespaces {
		all = append(all, namespace(i))
	}
	return all
}

// name returns the name and namespace of the i-th Memcached.
func name(cfg config, i int) (string, string) {
	return fmt.Sprintf("mc-%04d", i), namespace(i % cfg.Namespaces)
}

// parallel runs do for 0..n-1 on p goroutines and returns the first error.
func parallel(n, p int, do func(i int) error) error {
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		firstErr error
		once     sync.Once
	)
	for range p {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// every calls f every interval, from one interval on, until ctx is done.
func every(ctx context.Context, interval time.Duration, f func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
		}
	}
}

// sampleRate samples a cumulative counter every second and returns a
// function that reports the per-second rates so far.
func sampleRate(ctx context.Context, counter *atomic.Int64) func() []float64 {
	var (
		mu    sync.Mutex
		rates []float64
	)
	last := counter.Load()
	go every(ctx, time.Second, func() {
		now := counter.Load()
		mu.Lock()
		rates = append(rates, float64(now-last))
		mu.Unlock()
		last = now
	})
	return func() []float64 {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(rates)
	}
}
