package controller

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

var (
	scheme = runtime.NewScheme()

	// testConfig authenticates as the administrator of the test API server.
	testConfig *rest.Config

	// k8sClient talks to the API server directly, bypassing the manager's
	// cache, so that tests observe what the API server holds.
	k8sClient client.Client

	// reconciler is the reconciler the manager runs.
	reconciler *MemcachedReconciler

	// optionalAPIs are the optional APIs the test API server has.
	optionalAPIs APIs

	// requests records every request the manager sends to the API server.
	requests = &requestLog{}

	// testClock is the reconciler's clock: the real time, which a test can
	// move forward.
	testClock = &steppingClock{}
)

// steppingClock is the real clock moved forward by the steps a test takes,
// so that a test can make a drain end exactly when it says.
type steppingClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *steppingClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Step moves the clock forward by d.
func (c *steppingClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// requestLog records the method and path of HTTP requests.
type requestLog struct {
	mu       sync.Mutex
	requests []string // "METHOD path"
}

// Wrap returns a transport that records the requests sent through next.
func (l *requestLog) Wrap(next http.RoundTripper) http.RoundTripper {
	return &recordingTransport{log: l, next: next}
}

type recordingTransport struct {
	log  *requestLog
	next http.RoundTripper
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.log.mu.Lock()
	t.log.requests = append(t.log.requests, req.Method+" "+req.URL.Path)
	t.log.mu.Unlock()
	return t.next.RoundTrip(req)
}

// writesIn returns the requests made so far that can change objects in
// namespace.
func (l *requestLog) writesIn(namespace string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var matched []string
	for _, r := range l.requests {
		method, path, _ := strings.Cut(r, " ")
		if !strings.Contains(path, "/namespaces/"+namespace+"/") {
			continue
		}
		if method == http.MethodGet || method == http.MethodHead {
			continue
		}
		matched = append(matched, r)
	}
	return matched
}

// during runs fn and returns the requests sent meanwhile about objects in
// namespace or in no namespace, such as discovery.
func (l *requestLog) during(namespace string, fn func()) []string {
	l.mu.Lock()
	start := len(l.requests)
	l.mu.Unlock()
	fn()
	l.mu.Lock()
	defer l.mu.Unlock()
	var matched []string
	for _, r := range l.requests[start:] {
		if _, path, _ := strings.Cut(r, " "); strings.Contains(path, "/namespaces/"+namespace+"/") ||
			!strings.Contains(path, "/namespaces/") {
			matched = append(matched, r)
		}
	}
	return matched
}

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cachev1alpha1.AddToScheme(scheme))
}

// TestMain starts a real kube-apiserver and etcd once for the package and
// runs the manager with the Memcached reconciler against them.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run these tests with 'make test', which builds etcd and kube-apiserver")
		return 1
	}
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))

	testEnv := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// Without a garbage collector, the Services of every Memcached the tests
	// create stay: give them more cluster IPs than the default /24 has.
	testEnv.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to start the test API server: %v\n", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "Failed to stop the test API server: %v\n", err)
		}
	}()

	testConfig = cfg
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to create a client: %v\n", err)
		return 1
	}

	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to create an HTTP client: %v\n", err)
		return 1
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to create a REST mapper: %v\n", err)
		return 1
	}
	apis, err := LookUpAPIs(mapper)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to look up the optional APIs: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgrConfig := rest.CopyConfig(cfg)
	mgrConfig.Wrap(requests.Wrap)
	mgr, r, err := newOperator(ctx, mgrConfig, apis, func(o *cache.Options) {
		o.DefaultFieldSelector = fields.OneTermNotEqualSelector("metadata.namespace", byHandNamespace)
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to set up the operator: %v\n", err)
		return 1
	}
	reconciler, optionalAPIs = r, apis

	stopped := make(chan error)
	go func() { stopped <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-stopped; err != nil {
			fmt.Fprintf(os.Stderr, "The manager failed: %v\n", err)
		}
	}()

	return m.Run()
}

// byHandNamespace is the namespace the operator of the suite does not
// watch: a test reconciles its Memcacheds itself, one step at a time.
const byHandNamespace = "reconciled-by-hand"

// newOperator returns a manager running the Memcached reconciler as the
// operator's main does, and the reconciler, for the cluster of cfg with the
// optional APIs apis.
func newOperator(ctx context.Context, cfg *rest.Config, apis APIs, cacheOptions ...func(*cache.Options)) (ctrl.Manager, *MemcachedReconciler, error) {
	opts := CacheOptions(apis)
	for _, o := range cacheOptions {
		o(&opts)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  opts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// A test may run a second operator beside the first.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create the manager: %w", err)
	}
	r := &MemcachedReconciler{
		Client:    mgr.GetClient(),
		APIReader: &faultyReader{Reader: mgr.GetAPIReader()},
		Recorder:  mgr.GetEventRecorder("memcached-operator"),
		Clock:     testClock,
		APIs:      apis,
	}
	if err := r.SetupWithManager(ctx, mgr, 2); err != nil {
		return nil, nil, fmt.Errorf("failed to set up the reconciler: %w", err)
	}
	return mgr, r, nil
}

// secretReadFaults holds, by namespace, the error that reading a Secret of
// that namespace from the API server returns: a test sets one to stand for
// an RBAC rule or a network that refuses the operator.
var secretReadFaults sync.Map

// faultyReader reads through Reader, except Secrets of the namespaces that
// secretReadFaults names.
type faultyReader struct {
	client.Reader
}

func (r *faultyReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*corev1.Secret); ok {
		if err, ok := secretReadFaults.Load(key.Namespace); ok {
			return err.(error)
		}
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// failSecretReads makes the operator's reads of the Secrets of namespace
// fail with err until the returned function is called, or the test ends.
func failSecretReads(t *testing.T, namespace string, err error) (restore func()) {
	secretReadFaults.Store(namespace, err)
	restore = func() { secretReadFaults.Delete(namespace) }
	t.Cleanup(restore)
	return restore
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := k8sClient.Create(t.Context(), ns); err != nil {
		t.Fatalf("Failed to create namespace: %v", err)
	}
	t.Cleanup(func() {
		// Namespaces are never fully deleted without kube-controller-manager;
		// deleting still stops the reconciler from acting on them.
		_ = k8sClient.Delete(context.Background(), ns)
	})
	return ns.Name
}
