// Package simcluster runs a simulated Kubernetes cluster on this machine: a
// real control plane (etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler) and kwok, which plays the kubelet of fake nodes so that
// scheduled pods become Running with an IP. No container runs: pods are API
// objects only, and their IPs are not reachable.
//
// The API server enforces RBAC and Pod Security admission, the controller
// manager runs the ReplicaSet, garbage-collector and other controllers, and the
// scheduler places pods on the fake nodes, so operators see what they would
// see on a real cluster.
package simcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"example.com/memcached-operator/test/internal/proc"
)

// Options configure a simulated cluster.
type Options struct {
	// BinDir holds the etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler and kwok binaries and kwok's stages in kwok-stages/, as
	// hack/build-control-plane.sh builds them. Required.
	BinDir string

	// DataDir holds the cluster's state, keys and logs. When empty, a
	// temporary directory is used and removed by Close.
	DataDir string

	// Nodes is the number of fake nodes; 3 when zero.
	Nodes int

	// NoFakeNodes starts the cluster without fake nodes, for real ones.
	NoFakeNodes bool

	// Address is the IP address the API server listens on and advertises;
	// 127.0.0.1 when empty. Pods of a real node reach the API server at the
	// address the kubernetes Service publishes, which must not be a
	// loopback one.
	Address string
}

// withDefaults returns opts with the defaults of the fields left empty.
func (opts Options) withDefaults() Options {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.NoFakeNodes {
		opts.Nodes = 0
	}
	if opts.Address == "" {
		opts.Address = "127.0.0.1"
	}
	return opts
}

// Cluster is a running simulated cluster.
type Cluster struct {
	// Kubeconfig is the path of a kubeconfig that authenticates as a cluster
	// administrator (group system:masters).
	Kubeconfig string

	// Config is the REST config of the cluster administrator.
	Config *rest.Config

	// DataDir holds the cluster's state; its logs/ directory has the output of
	// every component.
	DataDir string

	components    []*component
	binDir        string
	address       string
	apiServerPort int
	adminToken    string
	removeDataDir bool
}

// component is a process of the cluster, and how to start it again.
type component struct {
	name    string
	args    []string
	process *proc.Process // nil while stopped
}

// stopGrace is how long a component may take to exit after SIGTERM.
const stopGrace = 10 * time.Second

// Start starts a simulated cluster and returns once the API server is ready and
// every node is Ready and schedulable. The caller must Close it.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.BinDir == "" {
		return nil, errors.New("simcluster: Options.BinDir is required")
	}
	opts = opts.withDefaults()

	c := &Cluster{DataDir: opts.DataDir, binDir: opts.BinDir}
	if c.DataDir == "" {
		if c.DataDir, err = os.MkdirTemp("", "simcluster-"); err != nil {
			return nil, fmt.Errorf("failed to create a data directory: %w", err)
		}
		c.removeDataDir = true
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()

	for _, dir := range []string{c.pki(), c.logs()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create %s: %w", dir, err)
		}
	}
	token, err := c.writeCredentials()
	if err != nil {
		return nil, err
	}
	c.adminToken = token
	ports, err := proc.FreeLoopbackPorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	apiServerPort := ports[2]
	c.apiServerPort = apiServerPort

	if err := c.start("etcd", opts.BinDir,
		"--name=simcluster",
		"--data-dir="+filepath.Join(c.DataDir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=simcluster="+peerURL,
		// The cluster is thrown away: losing writes on a power cut does not matter.
		"--unsafe-no-fsync",
		"--log-level=warn",
	); err != nil {
		return nil, err
	}

	if err := c.start("kube-apiserver", opts.BinDir, c.apiServerArgs(opts.Address, etcdURL, apiServerPort)...); err != nil {
		return nil, err
	}
	c.address = opts.Address
	if err := c.waitForAPIServer(ctx, apiServerPort, token); err != nil {
		return nil, err
	}

	// kube-controller-manager and kube-scheduler may send many requests, so
	// that they are not the bottleneck of a test or a benchmark.
	qps, burst := "1000", "2000"
	if err := c.start("kube-controller-manager", opts.BinDir,
		"--kubeconfig="+c.Kubeconfig,
		"--secure-port=0",
		"--leader-elect=false",
		"--service-account-private-key-file="+filepath.Join(c.pki(), "sa.key"),
		"--root-ca-file="+filepath.Join(c.pki(), "apiserver.crt"),
		"--use-service-account-credentials=false",
		"--kube-api-qps="+qps, "--kube-api-burst="+burst,
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
		"--concurrent-gc-syncs=50",
		// kwok's nodes do not set a pod Ready again after the node
		// lifecycle controller marked it not ready, as a kubelet would: a
		// control plane outage must not make the nodes look dead.
		"--node-monitor-grace-period=10m",
		// Volume claims of the default StorageClass get host-path volumes
		// in a directory of the cluster's.
		"--enable-hostpath-provisioner",
	); err != nil {
		return nil, err
	}

	schedulerConfig := filepath.Join(c.DataDir, "kube-scheduler.yaml")
	if err := os.WriteFile(schedulerConfig, []byte(fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: %s
  burst: %s
leaderElection:
  leaderElect: false
`, c.Kubeconfig, qps, burst)), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write the scheduler configuration: %w", err)
	}
	if err := c.start("kube-scheduler", opts.BinDir, "--config="+schedulerConfig, "--secure-port=0"); err != nil {
		return nil, err
	}

	kwokArgs := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + nodeAnnotation + "=fake",
		"--cidr=10.244.0.0/16",
		"--node-ip=10.1.0.1",
		// kwok renews node leases only when this is set; without renewals the
		// node-lifecycle controller marks the nodes and their pods NotReady.
		"--node-lease-duration-seconds=40",
	}
	stages, err := filepath.Glob(filepath.Join(opts.BinDir, "kwok-stages", "*.yaml"))
	if err != nil || len(stages) == 0 {
		return nil, fmt.Errorf("no kwok stages in %s/kwok-stages: run hack/build-control-plane.sh", opts.BinDir)
	}
	for _, stage := range stages {
		kwokArgs = append(kwokArgs, "--config="+stage)
	}
	if err := c.start("kwok", opts.BinDir, kwokArgs...); err != nil {
		return nil, err
	}

	clientset, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	if err := createNodes(ctx, clientset, opts.Nodes); err != nil {
		return nil, err
	}
	if err := createStorageClass(ctx, clientset); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, "nodes to be Ready and schedulable", func(ctx context.Context) (bool, error) {
		return nodesReady(ctx, clientset, opts.Nodes)
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// apiServerArgs returns the arguments of kube-apiserver, listening on
// address and port, with its data in etcdURL.
func (c *Cluster) apiServerArgs(address, etcdURL string, port int) []string {
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + address, "--advertise-address=" + address,
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + c.pki(),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--token-auth-file=" + filepath.Join(c.pki(), "tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(c.pki(), "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(c.pki(), "sa.key"),
		"--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000",
		// For logs and exec: nodes are not in any DNS.
		"--kubelet-preferred-address-types=InternalIP",
	}
	if net.ParseIP(address).IsLoopback() {
		// The default reconciler refuses to publish a loopback address.
		args = append(args, "--endpoint-reconciler-type=none")
	}
	return args
}

// ServiceCIDR is the range of the Services' cluster IPs.
const ServiceCIDR = "10.96.0.0/16"

// StorageClassName names the cluster's default StorageClass: volumes in
// directories of the machine, made by kube-controller-manager's host-path
// provisioner.
const StorageClassName = "standard"

func createStorageClass(ctx context.Context, clientset kubernetes.Interface) error {
	class := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: StorageClassName,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       "kubernetes.io/host-path",
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingImmediate),
	}
	if _, err := clientset.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("failed to create the default StorageClass: %w", err)
	}
	return nil
}

// Close stops every process of the cluster, newest first, and removes its data
// directory if Start created it.
func (c *Cluster) Close() error {
	var errs []error
	for _, comp := range slices.Backward(c.components) {
		if comp.process != nil {
			errs = append(errs, comp.process.Stop(stopGrace))
			comp.process = nil
		}
	}
	c.components = nil
	if c.removeDataDir {
		errs = append(errs, os.RemoveAll(c.DataDir))
	}
	return errors.Join(errs...)
}

// PIDs returns the process ID of every running component, by name, e.g.
// "kube-apiserver".
func (c *Cluster) PIDs() map[string]int {
	pids := map[string]int{}
	for _, comp := range c.components {
		if comp.process != nil {
			pids[comp.name] = comp.process.PID()
		}
	}
	return pids
}

// LogPath returns the path of the log of a component, e.g. "kube-apiserver".
func (c *Cluster) LogPath(component string) string {
	return filepath.Join(c.logs(), component+".log")
}

func (c *Cluster) pki() string  { return filepath.Join(c.DataDir, "pki") }
func (c *Cluster) logs() string { return filepath.Join(c.DataDir, "logs") }

func (c *Cluster) start(name, binDir string, args ...string) error {
	p, err := proc.Start(name, c.LogPath(name), filepath.Join(binDir, name), args...)
	if err != nil {
		return err
	}
	c.components = append(c.components, &component{name: name, args: args, process: p})
	return nil
}

// StopComponent stops a component of the cluster, e.g. "kube-apiserver" or
// "etcd", as an outage would: SIGTERM, then SIGKILL after a grace period.
func (c *Cluster) StopComponent(name string) error {
	comp, err := c.component(name)
	if err != nil {
		return err
	}
	if comp.process == nil {
		return fmt.Errorf("%s is not running", name)
	}
	err = comp.process.Stop(stopGrace)
	comp.process = nil
	return err
}

// StartComponent starts a component stopped by StopComponent again, with
// the same arguments and data, and, for kube-apiserver, returns once it is
// ready.
func (c *Cluster) StartComponent(ctx context.Context, name string) error {
	comp, err := c.component(name)
	if err != nil {
		return err
	}
	if comp.process != nil {
		return fmt.Errorf("%s is running", name)
	}
	if comp.process, err = proc.Start(name, c.LogPath(name), filepath.Join(c.binDir, name), comp.args...); err != nil {
		return err
	}
	if name == "kube-apiserver" {
		return c.waitForAPIServer(ctx, c.apiServerPort, c.adminToken)
	}
	return nil
}

func (c *Cluster) component(name string) (*component, error) {
	for _, comp := range c.components {
		if comp.name == name {
			return comp, nil
		}
	}
	return nil, fmt.Errorf("the cluster has no component %q", name)
}

// writeCredentials writes the service-account signing keys and the static
// token file of the administrator, and returns the administrator's token.
func (c *Cluster) writeCredentials() (string, error) {
	if err := writeServiceAccountKeys(filepath.Join(c.pki(), "sa.key"), filepath.Join(c.pki(), "sa.pub")); err != nil {
		return "", err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("failed to generate a token: %w", err)
	}
	token := hex.EncodeToString(secret)
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", token)
	if err := os.WriteFile(filepath.Join(c.pki(), "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return "", fmt.Errorf("failed to write the token file: %w", err)
	}
	return token, nil
}

// waitForAPIServer waits for kube-apiserver to be ready, then writes the
// administrator's kubeconfig.
func (c *Cluster) waitForAPIServer(ctx context.Context, port int, token string) error {
	caFile := filepath.Join(c.pki(), "apiserver.crt")
	if err := c.waitFor(ctx, "kube-apiserver to write its serving certificate", func(context.Context) (bool, error) {
		_, err := os.Stat(caFile)
		return err == nil, nil
	}); err != nil {
		return err
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("failed to read the API server certificate: %w", err)
	}
	c.Config = &rest.Config{
		Host:            "https://" + net.JoinHostPort(c.address, strconv.Itoa(port)),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
	}
	clientset, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("failed to create a client: %w", err)
	}
	if err := c.waitFor(ctx, "kube-apiserver to be ready", func(ctx context.Context) (bool, error) {
		err := clientset.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
		return err == nil, nil
	}); err != nil {
		return err
	}

	c.Kubeconfig = filepath.Join(c.DataDir, "admin.kubeconfig")
	return WriteKubeconfig(c.Kubeconfig, c.Config, "admin")
}

// waitFor polls done until it reports true, a component exits, or ctx or two
// minutes run out.
func (c *Cluster) waitFor(ctx context.Context, what string, done func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, comp := range c.components {
			if comp.process == nil {
				continue
			}
			if err := comp.process.Exited(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		ok, err := done(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (logs in %s)", what, ctx.Err(), c.logs())
		case <-tick.C:
		}
	}
}

// WriteKubeconfig writes a kubeconfig at path for cfg, which must
// authenticate with a bearer token, naming its user user.
func WriteKubeconfig(path string, cfg *rest.Config, user string) error {
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.Clusters["simcluster"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kubeconfig.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kubeconfig.Contexts["simcluster"] = &clientcmdapi.Context{Cluster: "simcluster", AuthInfo: user}
	kubeconfig.CurrentContext = "simcluster"
	if err := clientcmd.WriteToFile(*kubeconfig, path); err != nil {
		return fmt.Errorf("failed to write kubeconfig %s: %w", path, err)
	}
	return nil
}
