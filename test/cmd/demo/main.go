// Command demo shows the operator at work on a simulated cluster: it starts
// the cluster, installs the operator's CRD and RBAC, runs the operator with
// its own ServiceAccount's token, applies the sample Memcached and waits for
// its pods to run, then keeps everything up until Ctrl-C.
//
// With --real-node, the cluster has a real node instead of fake ones, and
// memcached runs in containers on it: the demo must then run as root, in a
// network namespace of its own (make demo-node sees to both).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/localrun"
	"example.com/memcached-operator/test/internal/realnode"
	"example.com/memcached-operator/test/internal/simcluster"
)

func main() {
	var (
		binDir, manager, dataDir string
		nodes                    int
		node                     nodeFlags
	)
	flag.StringVar(&binDir, "bin-dir", os.Getenv("CONTROL_PLANE_DIR"),
		"Directory of the control-plane binaries built by hack/build-control-plane.sh (default $CONTROL_PLANE_DIR).")
	flag.StringVar(&manager, "manager", "bin/manager", "The operator's binary.")
	flag.StringVar(&dataDir, "data-dir", "bin/demo-data", "Directory for the cluster's state, kubeconfigs and logs; emptied first.")
	flag.IntVar(&nodes, "nodes", 3, "Number of fake nodes.")
	flag.BoolVar(&node.enabled, "real-node", false, "Run the pods on a real node instead of fake ones.")
	flag.StringVar(&node.binDir, "node-bin-dir", os.Getenv("NODE_BIN_DIR"),
		"Directory of kubelet, kube-proxy and coredns built by hack/build-node.sh (default $NODE_BIN_DIR).")
	flag.StringVar(&node.images, "node-images", os.Getenv("NODE_IMAGES"),
		"The archive of the real node's images, written by test/cmd/nodeimages (default $NODE_IMAGES).")
	flag.StringVar(&node.netns, "netns", "", "The name of the network namespace the demo runs in, for the commands it prints.")
	flag.Parse()

	if err := run(binDir, manager, dataDir, nodes, node); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

// nodeFlags say whether and how to run a real node.
type nodeFlags struct {
	enabled               bool
	binDir, images, netns string
}

func run(binDir, manager, dataDir string, nodes int, node nodeFlags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()

	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dataDir); err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	kubectl := filepath.Join(binDir, "kubectl")

	clusterOptions := simcluster.Options{BinDir: binDir, DataDir: filepath.Join(dataDir, "cluster"), Nodes: nodes}
	var operatorArgs []string
	if node.enabled {
		if node.netns == "" {
			return errors.New("--real-node needs --netns, the network namespace the demo runs in")
		}
		if err := realnode.CheckHost(); err != nil {
			return err
		}
		if err := realnode.SetUpNetwork(); err != nil {
			return err
		}
		clusterOptions.NoFakeNodes, clusterOptions.Address = true, realnode.Address
		operatorArgs = []string{"--memcached-image=" + realnode.MemcachedImage, "--exporter-image=" + realnode.ExporterImage}
	}

	step("Starting the simulated cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)")
	cluster, err := simcluster.Start(ctx, clusterOptions)
	if err != nil {
		return err
	}
	defer func() {
		step("Stopping the operator and the simulated cluster")
		if err := cluster.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		}
	}()
	if node.enabled {
		step("Starting a real node (containerd, kubelet, kube-proxy, CoreDNS) and importing its images")
		realNode, err := realnode.Start(ctx, realnode.Options{BinDir: node.binDir, Images: node.images, Cluster: cluster})
		if err != nil {
			return err
		}
		defer func() {
			if err := realNode.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "demo: %v\n", err)
			}
		}()
	}
	adminKubeconfig := filepath.Join(dataDir, "admin.kubeconfig")
	if err := simcluster.WriteKubeconfig(adminKubeconfig, cluster.Config, "admin"); err != nil {
		return err
	}

	step("Installing the CRD, the operator's namespace, ServiceAccount and RBAC from config/default")
	operatorKubeconfig := filepath.Join(dataDir, "operator.kubeconfig")
	if err := localrun.Install(ctx, cluster.Config, kubectl, filepath.Join("config", "default"), operatorKubeconfig); err != nil {
		return err
	}

	step("Starting the operator with its ServiceAccount's token")
	operator, err := localrun.Start(ctx, localrun.Config{
		Binary: manager, Kubeconfig: operatorKubeconfig, LogPath: filepath.Join(dataDir, "operator.log"), Args: operatorArgs})
	if err != nil {
		return err
	}
	defer func() { _ = operator.Stop() }()

	sample := filepath.Join("config", "samples", "cache_v1alpha1_memcached.yaml")
	step("Applying " + sample)
	if err := kubectlRun(kubectl, adminKubeconfig, "apply", "--namespace=default", "-f", sample); err != nil {
		return err
	}

	step("Waiting for the Memcached's pods to run and be listed in status.nodes")
	if err := waitForNodes(ctx, cluster, "default", "example-memcached", 3); err != nil {
		return err
	}
	fmt.Printf("Ready in %.1fs.\n\n", time.Since(start).Seconds())

	if err := kubectlRun(kubectl, adminKubeconfig, "get", "memcached,deployments,pods", "--namespace=default", "-o", "wide"); err != nil {
		return err
	}
	fmt.Println()
	if err := kubectlRun(kubectl, adminKubeconfig, "get", "memcached", "example-memcached", "--namespace=default",
		"-o", "jsonpath={.status}{\"\\n\"}"); err != nil {
		return err
	}

	if node.enabled {
		return waitOnRealNode(ctx, cluster, node.netns, adminKubeconfig, binDir, operator.LogPath)
	}
	fmt.Printf(`
The simulated cluster is running, with the operator. Try it from another terminal:

  export KUBECONFIG=%s
  export PATH=%s:$PATH
  kubectl scale mc example-memcached --replicas=5
  kubectl get mc,deploy,pods,svc
  kubectl get memcached example-memcached -o yaml

The operator logs to %s; the cluster's logs are in %s.
Press Ctrl-C to stop.
`, adminKubeconfig, binDir, operator.LogPath, filepath.Join(cluster.DataDir, "logs"))
	<-ctx.Done()
	return nil
}

func step(msg string) {
	fmt.Printf("==> %s\n", msg)
}

func kubectlRun(kubectl, kubeconfig string, args ...string) error {
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl %v: %w", args, err)
	}
	return nil
}

// waitForNodes waits until the Memcached's status.nodes names exactly its
// size Running pods.
func waitForNodes(ctx context.Context, cluster *simcluster.Cluster, namespace, name string, size int) error {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cachev1alpha1.AddToScheme(scheme))
	c, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		mc := &cachev1alpha1.Memcached{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, mc); err != nil {
			return false, nil
		}
		pods := &corev1.PodList{}
		if err := c.List(ctx, pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/instance": name}); err != nil {
			return false, nil
		}
		var running []string
		for _, pod := range pods.Items {
			if pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil {
				running = append(running, pod.Name)
			}
		}
		slices.Sort(running)
		return len(running) == size && slices.Equal(running, mc.Status.Nodes), nil
	})
}

// waitOnRealNode prints how to reach the sample's memcached pods, which run
// on the real node, then waits for Ctrl-C.
func waitOnRealNode(ctx context.Context, cluster *simcluster.Cluster, netns, kubeconfig, binDir, operatorLog string) error {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cachev1alpha1.AddToScheme(scheme))
	c, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	mc := &cachev1alpha1.Memcached{}
	service := &corev1.Service{}
	key := client.ObjectKey{Namespace: "default", Name: "example-memcached"}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, key, mc); err != nil {
			return false, nil
		}
		return len(mc.Status.ServerList) == int(mc.Spec.Size), nil
	}); err != nil {
		return fmt.Errorf("waiting for the server list: %w", err)
	}
	if err := c.Get(ctx, key, service); err != nil {
		return err
	}
	in := "ip netns exec " + netns + " "
	fmt.Printf(`
The cluster runs with a real node: memcached runs in containers, in the network
namespace %[1]s, which nothing is routed out of. Its pods serve at
%[2]s, and the Service example-memcached at %[3]s:11211.
From another terminal, as root:

  %[4]sbash -c 'exec 3<>/dev/tcp/%[3]s/11211; printf "set greeting 0 0 5\r\nhello\r\nget greeting\r\n" >&3; head -n 4 <&3'
  %[4]s%[5]s/kubectl --kubeconfig=%[6]s get mc,pods,svc -o wide
  %[4]s%[5]s/kubectl --kubeconfig=%[6]s scale mc example-memcached --replicas=5
  %[4]s%[5]s/kubectl --kubeconfig=%[6]s logs deployment/example-memcached

The operator logs to %[7]s; the cluster's and the node's logs are in %[8]s.
Press Ctrl-C to stop.
`, netns, strings.Join(mc.Status.ServerList, " "), service.Spec.ClusterIP, in, binDir, kubeconfig, operatorLog,
		filepath.Join(cluster.DataDir, "logs")+" and "+filepath.Join(cluster.DataDir, "node", "logs"))
	<-ctx.Done()
	return nil
}
