// Package node tests the release and memcached on a real node: the
// simulated cluster's control plane, and a kubelet whose pods run in
// containers, reached over a real pod network, Services and cluster DNS.
// The operator runs as the release installs it, in a pod of the node.
//
// It needs root and a network namespace of its own: run it with
// make test-node.
package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/realnode"
	"example.com/memcached-operator/test/internal/simcluster"
)

var (
	cluster   *simcluster.Cluster
	node      *realnode.Node
	k8sClient client.Client
	clientset kubernetes.Interface
	kubectl   string
)

const (
	repoRoot = "../.."
	// operatorNamespace and managerName are the release's.
	operatorNamespace = "memcached-operator-system"
	managerName       = "memcached-operator-controller-manager"
)

func TestMain(m *testing.M) {
	SetDefaultEventuallyTimeout(2 * time.Minute)
	SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	os.Exit(run(m))
}

func run(m *testing.M) int {
	binDir, nodeBinDir := os.Getenv("CONTROL_PLANE_DIR"), os.Getenv("NODE_BIN_DIR")
	images, crds, manifest := os.Getenv("NODE_IMAGES"), os.Getenv("CRDS_MANIFEST"), os.Getenv("INSTALL_MANIFEST")
	if binDir == "" || nodeBinDir == "" || images == "" || crds == "" || manifest == "" {
		fmt.Fprintln(os.Stderr, "CONTROL_PLANE_DIR, NODE_BIN_DIR, NODE_IMAGES, CRDS_MANIFEST and INSTALL_MANIFEST must be set: run these tests with 'make test-node'")
		return 1
	}
	if err := realnode.CheckHost(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := realnode.SetUpNetwork(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubectl = filepath.Join(binDir, "kubectl")
	ctx := context.Background()
	dataDir, err := os.MkdirTemp("", "memcached-operator-node-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := 1
	defer func() {
		if code == 0 {
			if err := os.RemoveAll(dataDir); err != nil {
				fmt.Fprintf(os.Stderr, "Failed to remove %s: %v\n", dataDir, err)
			}
		} else {
			fmt.Fprintf(os.Stderr, "Logs of the cluster, the node and its pods are kept in %s\n", dataDir)
		}
	}()

	start := time.Now()
	cluster, err = simcluster.Start(ctx, simcluster.Options{BinDir: binDir, DataDir: filepath.Join(dataDir, "cluster"),
		NoFakeNodes: true, Address: realnode.Address})
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to start the control plane: %v\n", err)
		return 1
	}
	defer func() { _ = cluster.Close() }()
	node, err = realnode.Start(ctx, realnode.Options{BinDir: nodeBinDir, Images: images, Cluster: cluster})
	if err != nil {
		fmt.Fprintf(os.Stderr, "Failed to start the real node: %v\n", err)
		return 1
	}
	defer func() {
		if code != 0 {
			keepPodLogs(filepath.Join(dataDir, "pods"))
		}
		_ = node.Close()
	}()
	fmt.Printf("Control plane and real node ready in %.1fs\n", time.Since(start).Seconds())

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cachev1alpha1.AddToScheme(scheme))
	if k8sClient, err = client.New(cluster.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if clientset, err = kubernetes.NewForConfig(cluster.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	start = time.Now()
	if err := installRelease(crds, manifest, filepath.Join(dataDir, "install.yaml")); err != nil {
		fmt.Fprintf(os.Stderr, "Failed to install the release: %v\n", err)
		return 1
	}
	fmt.Printf("Release installed and its manager Ready in %.1fs\n", time.Since(start).Seconds())

	code = m.Run()
	return code
}

// installRelease applies the release's CRD manifest, waits for the CRD to be
// established, then applies the release manifest as it ships, but for the
// manager's image, which is the one imported into the node, and the images
// of the Memcacheds that name none, which are the node's (as a cluster that
// pulls from a mirror sets them); then waits for the manager's Deployment to
// be available.
func installRelease(crds, manifest, out string) error {
	if output, err := runKubectl("apply", "--server-side", "-f", crds); err != nil {
		return fmt.Errorf("kubectl apply %s: %w: %s", crds, err, output)
	}
	if output, err := runKubectl("wait", "--for=condition=Established", "--timeout=60s",
		"crd/memcacheds.cache.example.com"); err != nil {
		return fmt.Errorf("the CRD was not established: %w: %s", err, output)
	}
	data, err := os.ReadFile(manifest)
	if err != nil {
		return err
	}
	var docs [][]byte
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if obj.Object == nil {
			continue
		}
		if obj.GetKind() == "Deployment" && obj.GetName() == managerName {
			deployment := &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, deployment); err != nil {
				return err
			}
			manager := &deployment.Spec.Template.Spec.Containers[0]
			manager.Image = realnode.OperatorImage
			manager.Args = slices.DeleteFunc(manager.Args, func(arg string) bool {
				return strings.HasPrefix(arg, "--memcached-image=") || strings.HasPrefix(arg, "--exporter-image=")
			})
			manager.Args = append(manager.Args,
				"--memcached-image="+realnode.MemcachedImage, "--exporter-image="+realnode.ExporterImage)
			if obj.Object, err = runtime.DefaultUnstructuredConverter.ToUnstructured(deployment); err != nil {
				return err
			}
		}
		doc, err := yaml.Marshal(obj.Object)
		if err != nil {
			return err
		}
		docs = append(docs, doc)
	}
	if err := os.WriteFile(out, bytes.Join(docs, []byte("---\n")), 0o600); err != nil {
		return err
	}
	if output, err := runKubectl("apply", "--server-side", "-f", out); err != nil {
		return fmt.Errorf("kubectl apply: %w: %s", err, output)
	}
	if output, err := runKubectl("--namespace", operatorNamespace, "wait", "--for=condition=Available", "--timeout=3m",
		"deployment/"+managerName); err != nil {
		return fmt.Errorf("the manager did not become available: %w: %s", err, output)
	}
	return nil
}

// runKubectl runs kubectl as the cluster administrator and returns its
// combined output.
func runKubectl(args ...string) (string, error) {
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig=" + cluster.Kubeconfig}, args...)...)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// keepPodLogs writes the logs of every pod's containers into dir, for a
// failed run.
func keepPodLogs(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	out, err := runKubectl("get", "pods", "--all-namespaces", "-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}")
	if err != nil {
		return
	}
	for pod := range strings.FieldsSeq(out) {
		namespace, name, _ := strings.Cut(pod, "/")
		logs, _ := runKubectl("logs", "--namespace", namespace, name, "--all-containers", "--prefix")
		_ = os.WriteFile(filepath.Join(dir, namespace+"_"+name+".log"), []byte(logs), 0o644)
	}
	described, _ := runKubectl("describe", "pods", "--all-namespaces")
	_ = os.WriteFile(filepath.Join(dir, "describe.txt"), []byte(described), 0o644)
}
