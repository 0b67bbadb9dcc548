package memcached

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// apiServer is a real kube-apiserver with the CRDs of config/crd/bases,
// started by the first test that needs one and stopped by TestMain.
var apiServer struct {
	once   sync.Once
	env    *envtest.Environment
	client client.Client
	err    error
}

// TestMain stops the API server if a test started one.
func TestMain(m *testing.M) {
	code := m.Run()
	if apiServer.env != nil {
		if err := apiServer.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "Failed to stop the test API server: %v\n", err)
		}
	}
	os.Exit(code)
}

// admissionClient returns a client of the test API server, starting it the
// first time. It fails, saying how to run it, when KUBEBUILDER_ASSETS does not
// say where kube-apiserver and etcd are, as with a plain `go test`; `make
// test` builds them and sets it. Fuzzing runs no test, so it needs neither.
func admissionClient(t *testing.T) client.Client {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run these tests with 'make test', which builds etcd and kube-apiserver")
	}
	apiServer.once.Do(func() {
		scheme := runtime.NewScheme()
		if err := cachev1alpha1.AddToScheme(scheme); err != nil {
			apiServer.err = err
			return
		}
		apiServer.env = &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
		}
		cfg, err := apiServer.env.Start()
		if err != nil {
			apiServer.err = fmt.Errorf("starting the test API server: %w", err)
			return
		}
		// The corpus is sent from several goroutines.
		cfg.QPS, cfg.Burst = -1, -1
		apiServer.client, apiServer.err = client.New(cfg, client.Options{Scheme: scheme})
	})
	if apiServer.err != nil {
		t.Fatal(apiServer.err)
	}
	return apiServer.client
}

// admit creates a Memcached with spec, as JSON, with a server-side dry run.
// It returns nil when the API server admits it, or the API server's
// refusal; err is any other error.
func admit(ctx context.Context, c client.Client, name string, spec map[string]any) (refusal, err error) {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": cachev1alpha1.GroupVersion.String(), "kind": "Memcached",
		"metadata": map[string]any{"namespace": "default", "name": name},
		"spec":     spec,
	}}
	err = c.Create(ctx, obj, client.DryRunAll)
	switch {
	case err == nil:
		return nil, nil
	case apierrors.IsInvalid(err):
		return err, nil
	}
	return nil, fmt.Errorf("creating Memcached %s: %w", name, err)
}

// goVerdict returns what the operator's checks say about spec: nil when
// CheckExtraArgs and CheckMemoryLimit accept it.
func goVerdict(spec map[string]any) (error, error) {
	typed := &cachev1alpha1.MemcachedSpec{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(spec, typed); err != nil {
		return nil, fmt.Errorf("decoding the spec %v: %w", spec, err)
	}
	if err := CheckExtraArgs(typed); err != nil {
		return err, nil
	}
	return CheckMemoryLimit(typed), nil
}

// admissionCase is one input of the agreement test.
type admissionCase struct {
	source string // where the input comes from, for messages
	spec   map[string]any
}

// TestAdmissionAgreesWithTheOperator feeds a corpus of specs to the API
// server, as creations in a server-side dry run, and to CheckExtraArgs and
// CheckMemoryLimit, and checks that both accept or both refuse each, and
// that the API server says why it refuses. The corpus holds the inputs of
// the tests of the checks, of the fuzz test and its corpus, of the tests
// with a real memcached, and inputs made from the option tables.
func TestAdmissionAgreesWithTheOperator(t *testing.T) {
	c := admissionClient(t)
	cases := admissionCorpus(t)
	t.Logf("Corpus: %d specs", len(cases))
	if len(cases) < 1000 {
		t.Fatalf("the corpus has %d specs, want at least 1000", len(cases))
	}

	var (
		mu                         sync.Mutex
		disagreements              []string
		accepted, refused, counter atomic.Int64
	)
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		disagreements = append(disagreements, fmt.Sprintf(format, args...))
	}
	work := make(chan admissionCase)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for tc := range work {
				name := fmt.Sprintf("agreement-%d", counter.Add(1))
				refusal, err := admit(t.Context(), c, name, tc.spec)
				if err != nil {
					report("%s %v: %v", tc.source, tc.spec, err)
					continue
				}
				goErr, err := goVerdict(tc.spec)
				if err != nil {
					report("%s: %v", tc.source, err)
					continue
				}
				if beyond := beyondSchema(tc.spec); beyond != "" {
					// The schema bounds what the rules cost; the operator
					// does not check them.
					if refusal == nil || !strings.Contains(refusal.Error(), beyond) {
						report("%s %v: admission does not refuse it as %s: %v", tc.source, tc.spec, beyond, refusal)
					}
					continue
				}
				switch {
				case refusal == nil && goErr != nil:
					report("%s %v: admitted, but the operator refuses it: %v", tc.source, tc.spec, goErr)
				case refusal != nil && goErr == nil:
					report("%s %v: the operator accepts it, but admission refuses it: %v", tc.source, tc.spec, refusal)
				case refusal != nil && !saysWhy(refusal.Error()):
					report("%s %v: admission refuses it without saying why: %v", tc.source, tc.spec, refusal)
				case refusal != nil:
					refused.Add(1)
				default:
					accepted.Add(1)
				}
			}
		})
	}
	for _, tc := range cases {
		work <- tc
	}
	close(work)
	wg.Wait()

	t.Logf("Admission and the operator agree on %d accepted and %d refused specs; %d disagreements",
		accepted.Load(), refused.Load(), len(disagreements))
	for i, d := range disagreements {
		if i == 30 {
			t.Errorf("... and %d more", len(disagreements)-i)
			break
		}
		t.Error(d)
	}
	if accepted.Load() < int64(len(cases))/10 || refused.Load() < int64(len(cases))/10 {
		t.Errorf("the corpus is lopsided: %d accepted, %d refused", accepted.Load(), refused.Load())
	}
}

// beyondSchema returns how the API server refuses spec.extraArgs when they
// have more elements, or longer ones, than the schema allows, or "".
func beyondSchema(spec map[string]any) string {
	args, _ := spec["extraArgs"].([]any)
	if len(args) > MaxExtraArgs {
		return "Too many"
	}
	for _, a := range args {
		if len(a.(string)) > MaxExtraArgLength {
			return "Too long"
		}
	}
	return ""
}

// saysWhy reports whether an admission error gives a reason of one of the
// rules, rather than none or an error of the rules themselves.
func saysWhy(message string) bool {
	_, reason, _ := strings.Cut(message, "Invalid value: ")
	for _, broken := range []string{"evaluation", "cost budget", "compil", "no such key", "no such overload"} {
		if strings.Contains(message, broken) {
			return false
		}
	}
	return len(strings.TrimSpace(reason)) > 10
}
