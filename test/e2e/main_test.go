// Package e2e tests the operator end to end on a simulated cluster: a real
// control plane whose kube-controller-manager turns Deployments into
// ReplicaSets and Pods and garbage-collects them, and whose fake nodes run
// the pods. The operator runs as a local process with its ServiceAccount's
// token, so its RBAC is the one it is deployed with.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/localrun"
	"example.com/memcached-operator/test/internal/simcluster"
)

var (
	// cluster is the simulated cluster the tests run on.
	cluster *simcluster.Cluster
	// k8sClient acts as the cluster administrator.
	k8sClient client.Client
	// kubectl is the path of the kubectl binary built with the control plane.
	kubectl string
	// adminKubeconfig authenticates kubectl as the cluster administrator.
	adminKubeconfig string

	// operator is the running operator; a test may restart it.
	operator *localrun.Operator
	// managerBinary, operatorKubeconfig and logDir let a test restart it.
	managerBinary, operatorKubeconfig, logDir string
	// testCRDsDir holds the CRDs of other projects the tests install.
	testCRDsDir string
	// operatorLogs are the logs of every operator process the tests started.
	operatorLogs []string
)

const repoRoot = "../.."

func TestMain(m *testing.M) {
	SetDefaultEventuallyTimeout(90 * time.Second)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	os.Exit(run(m))
}

func run(m *testing.M) int {
	binDir := os.Getenv("CONTROL_PLANE_DIR")
	managerBinary = os.Getenv("MANAGER_BINARY")
	testCRDsDir = os.Getenv("TEST_CRDS_DIR")
	testCRDs := testCRDsDir
	if binDir == "" || managerBinary == "" || testCRDs == "" {
		fmt.Fprintln(os.Stderr, "CONTROL_PLANE_DIR, MANAGER_BINARY and TEST_CRDS_DIR must be set: run these tests with 'make test-e2e'")
		return 1
	}
	kubectl = filepath.Join(binDir, "kubectl")
	ctx := context.Background()

	dataDir, err := os.MkdirTemp("", "memcached-operator-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logDir = dataDir
	start := time.Now()
	cluster, err = simcluster.Start(ctx, simcluster.Options{BinDir: binDir, DataDir: filepath.Join(dataDir, "cluster")})
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to start the simulated cluster: %v\n", err)
		return 1
	}
	fmt.Printf("Simulated cluster started in %.1fs\n", time.Since(start).Seconds())
	code := 1
	defer func() {
		if err := cluster.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "Failed to stop the simulated cluster: %v\n", err)
		}
		if code == 0 {
			os.RemoveAll(dataDir)
		} else {
			fmt.Fprintf(os.Stderr, "Logs of the cluster and the operator are kept in %s\n", dataDir)
		}
	}()

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cachev1alpha1.AddToScheme(scheme))
	if k8sClient, err = client.New(cluster.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	adminKubeconfig = cluster.Kubeconfig

	// prometheus-operator's ServiceMonitor API (and cert-manager's Issuer
	// and Certificate) are there before the operator starts, as in a
	// cluster with Prometheus.
	if out, err := runKubectl("apply", "--server-side", "-f", testCRDs); err != nil {
		fmt.Fprintf(os.Stderr, "Failed to install the CRDs of %s: %v\n%s", testCRDs, err, out)
		return 1
	}
	if out, err := runKubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", testCRDs); err != nil {
		fmt.Fprintf(os.Stderr, "The CRDs of %s were not established: %v\n%s", testCRDs, err, out)
		return 1
	}

	operatorKubeconfig = filepath.Join(dataDir, "operator.kubeconfig")
	if err := localrun.Install(ctx, cluster.Config, kubectl, filepath.Join(repoRoot, "config", "default"), operatorKubeconfig); err != nil {
		fmt.Fprintf(os.Stderr, "Failed to install the operator: %v\n", err)
		return 1
	}
	if err := startOperator(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "Failed to start the operator: %v\n", err)
		return 1
	}
	defer func() { _ = operator.Stop() }()

	code = m.Run()
	if err := neverForbidden(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	return code
}

// neverForbidden checks the logs of every operator process the tests
// started: the RBAC the operator is deployed with let it do all it tried.
func neverForbidden() error {
	if len(operatorLogs) == 0 {
		return errors.New("no operator ran")
	}
	for _, path := range operatorLogs {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(data)) {
			// A namespace being deleted refuses new objects with a
			// "forbidden" of its own, which RBAC has nothing to do with.
			if strings.Contains(strings.ToLower(line), "forbidden") && !strings.Contains(line, "because it is being terminated") {
				return fmt.Errorf("the operator was forbidden something: see %s:\n%s", path, line)
			}
		}
		if !strings.Contains(string(data), "Starting workers") {
			return fmt.Errorf("an operator never started its workers: see %s", path)
		}
	}
	return nil
}

// startOperator starts a new operator process, logging to a file of its own.
func startOperator(ctx context.Context) error {
	logPath := filepath.Join(logDir, fmt.Sprintf("operator-%d.log", len(operatorLogs)))
	o, err := localrun.Start(ctx, localrun.Config{Binary: managerBinary, Kubeconfig: operatorKubeconfig, LogPath: logPath})
	if err != nil {
		return err
	}
	operator = o
	operatorLogs = append(operatorLogs, logPath)
	return nil
}

// runKubectl runs kubectl as the cluster administrator and returns its
// combined output.
func runKubectl(args ...string) (string, error) {
	return runKubectlAs(adminKubeconfig, args...)
}

// runKubectlAs runs kubectl with a kubeconfig and returns its combined
// output.
func runKubectlAs(kubeconfig string, args ...string) (string, error) {
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// lastOperatorLog returns the log of the operator process now running.
func lastOperatorLog(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(operatorLogs[len(operatorLogs)-1])
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
