package scrape

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/test/internal/apiserver"
	"example.com/memcached-operator/test/internal/localrun"
)

// managerBinary returns the manager that MANAGER_BINARY names, or builds
// ./cmd of the repository into the test's directory.
func managerBinary(t *testing.T) string {
	t.Helper()
	if path := os.Getenv("MANAGER_BINARY"); path != "" {
		return path
	}
	path := filepath.Join(t.TempDir(), "manager")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", path, "./cmd")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd: %v\n%s", err, out)
	}
	return path
}

// startAPIServer starts a kube-apiserver and etcd from KUBEBUILDER_ASSETS,
// with the CRD of config/crd/bases, and returns a client and a kubeconfig
// of an administrator.
func startAPIServer(t *testing.T) (client.Client, string) {
	t.Helper()
	env, cfg := apiserver.Start(t, filepath.Join("..", "..", "config", "crd", "bases"))
	admin, err := env.AddUser(envtest.User{Name: "scrape-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := cachev1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, path
}

// hasSeries reports whether the family name has a series with the labels
// of want.
func hasSeries(families map[string]*dto.MetricFamily, name string, want map[string]string) bool {
	return slices.ContainsFunc(families[name].GetMetric(), func(m *dto.Metric) bool { return hasLabels(m, want) })
}

// TestOperatorScrapeHasEveryName runs the manager against a real API
// server, with leader election on and its metrics served plainly on
// loopback, creates a Memcached, and checks that its metrics have every
// operator metric name the alerts and the dashboard use.
func TestOperatorScrapeHasEveryName(t *testing.T) {
	u := usedNames()
	names := u.names(fromOperator)
	if len(names) == 0 {
		t.Fatal("the sources use no operator metric name")
	}
	c, kubeconfig := startAPIServer(t)
	manager := managerBinary(t)

	logPath := filepath.Join(t.TempDir(), "manager.log")
	operator, err := localrun.Start(t.Context(), localrun.Config{
		Binary: manager, Kubeconfig: kubeconfig, LogPath: logPath,
		// After localrun's --leader-elect=false: the last one counts.
		Args: []string{"--leader-elect=true", "--leader-election-namespace=default"},
	})
	if err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("%v\n%s", err, log)
	}
	t.Cleanup(func() {
		if err := operator.Stop(); err != nil {
			t.Error(err)
		}
	})

	mc := rulesMemcached()
	mc.Namespace, mc.UID = metav1.NamespaceDefault, ""
	if err := c.Create(t.Context(), mc); err != nil {
		t.Fatalf("failed to create Memcached %s/%s: %v", mc.Namespace, mc.Name, err)
	}
	ours := map[string]string{"namespace": mc.Namespace, resources.MemcachedLabel: mc.Name}

	// Until the leader reconciled the Memcached and every name is there.
	var families map[string]*dto.MetricFamily
	var scrapeErr error
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := operator.Exited(); err != nil {
			return false, err
		}
		families, scrapeErr = operator.Metrics(ctx)
		return scrapeErr == nil && hasSeries(families, "memcached_operator_memcached_desired_servers", ours) &&
			len(missing(names, families)) == 0 && len(u.unmatched(names, families)) == 0, nil
	})
	if err == nil {
		t.Logf("all %d operator metric names the alerts and dashboard use are in the scrape of the operator (%d families), "+
			"with the label values of the %d selectors that ask for some: %s",
			len(names), len(families), u.checked(names), strings.Join(names, ", "))
		return
	}
	log, _ := os.ReadFile(logPath)
	switch {
	case families == nil:
		t.Fatalf("failed to scrape the operator's metrics at %s: %v, %v\n%s", operator.MetricsURL, err, scrapeErr, log)
	case !hasSeries(families, "memcached_operator_memcached_desired_servers", ours):
		t.Fatalf("the operator never reported the gauges of Memcached %s/%s: %v\n%s", mc.Namespace, mc.Name, err, log)
	case len(missing(names, families)) > 0:
		absent := missing(names, families)
		t.Errorf("%d of the %d operator metric names the alerts and dashboard use are not in a real scrape of the operator:%s",
			len(absent), len(names), u.report(absent))
	default:
		t.Errorf("no series of a real scrape of the operator has the label values these selectors ask for:\n  %s",
			strings.Join(u.unmatched(names, families), "\n  "))
	}
}
