// Package realnode runs a real Kubernetes node beside a simulated cluster's
// control plane: containerd and runc run the pods' containers, the CNI
// bridge plugin gives them addresses on a bridge, kube-proxy programs their
// Services with iptables, and CoreDNS serves the cluster domain.
//
// The node changes the network of the namespace it runs in (a bridge, an
// interface holding the node's address, iptables rules), so it must run in a
// network namespace of its own: make test-node and make demo-node make one
// (hack/in-netns.sh), and nothing is routed out of it. It needs root and
// writable cgroups; it was proven with cgroup v1 only.
package realnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"example.com/memcached-operator/test/internal/proc"
	"example.com/memcached-operator/test/internal/simcluster"
)

const (
	// Name is the node's name.
	Name = "real-node"
	// Address is the node's IP address: the API server and CoreDNS listen on
	// it too, and pods reach them there.
	Address = "10.99.0.1"
	// PodCIDR is the range of the pods' addresses, on the bridge cni0.
	PodCIDR = "10.88.0.0/16"
	// ClusterDomain is the DNS domain of Services and pods.
	ClusterDomain = "cluster.local"
)

// The images the node holds: nodeimages writes them, Start imports them.
const (
	PauseImage     = "localhost/memcached-operator/pause:node"
	MemcachedImage = "localhost/memcached-operator/memcached:1.6.38"
	ExporterImage  = "localhost/memcached-operator/memcached-exporter:v0.15.0"
	OperatorImage  = "localhost/memcached-operator/manager:node"
	ClientImage    = "localhost/memcached-operator/memcached-client:node"
)

// Options configure a real node.
type Options struct {
	// BinDir holds kubelet, kube-proxy and coredns, as hack/build-node.sh
	// builds them. Required.
	BinDir string
	// Images is the archive of the node's images that nodeimages writes.
	// Required.
	Images string
	// Cluster is the control plane the node joins; it must listen on
	// Address. Required.
	Cluster *simcluster.Cluster
}

// Node is a running real node.
type Node struct {
	dir        string
	cgroupRoot string
	processes  []*proc.Process
}

// CheckHost returns an error, one line that says what is missing, when this
// machine cannot run a real node here.
func CheckHost() error {
	if os.Geteuid() != 0 {
		return errors.New("a real node needs root (containerd, runc, iptables and the pods' network)")
	}
	for _, command := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip"} {
		if _, err := exec.LookPath(command); err != nil {
			return fmt.Errorf("%s is not installed: run hack/install-node-packages.sh as root", command)
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, plugin)); err != nil {
			return fmt.Errorf("the CNI plugin %s is not in %s: run hack/install-node-packages.sh as root", plugin, cniBinDir)
		}
	}
	probe, err := os.MkdirTemp(cgroupMemory(), "realnode-probe-")
	if err != nil {
		return fmt.Errorf("cgroups are not writable here (%w): the node cannot limit its pods", err)
	}
	_ = os.Remove(probe)
	// A namespace of its own has only the loopback interface, until the
	// node adds its own.
	links, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("failed to list the network interfaces: %w", err)
	}
	for _, link := range links {
		if link.Name != "lo" {
			return fmt.Errorf("a real node must run in a network namespace of its own, and this one has %s: make test-node makes one", link.Name)
		}
	}
	return nil
}

// CgroupRoot is the cgroup the node puts its pods under: the one
// hack/in-netns.sh removes afterwards, with whatever still runs in it.
func CgroupRoot() string {
	if root := os.Getenv("REAL_NODE_CGROUP_ROOT"); root != "" {
		return root
	}
	return "/memcached-operator-node"
}

// makeCgroup makes the cgroup path in every hierarchy, as the kubelet wants
// its root cgroup to exist; a cpuset cgroup takes the CPUs and memory nodes
// of its parent.
func makeCgroup(path string) error {
	hierarchies, err := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
	if err != nil {
		return err
	}
	if len(hierarchies) == 0 { // cgroup v2: one hierarchy
		hierarchies = []string{"/sys/fs/cgroup/cgroup.procs"}
	}
	for _, procs := range hierarchies {
		root := filepath.Dir(procs)
		dir := filepath.Join(root, path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("failed to make the node's cgroup: %w", err)
		}
		for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
			if value, err := os.ReadFile(filepath.Join(root, file)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, file), value, 0o644); err != nil {
					return fmt.Errorf("failed to set %s of the node's cgroup: %w", file, err)
				}
			}
		}
	}
	return nil
}

// cniBinDir is where Debian's containernetworking-plugins installs.
const cniBinDir = "/usr/lib/cni"

// nodeLink holds the node's address.
const nodeLink = "node0"

// cgroupMemory is the memory cgroup hierarchy (v1), or the unified one (v2).
func cgroupMemory() string {
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
		return "/sys/fs/cgroup/memory"
	}
	return "/sys/fs/cgroup"
}

// SetUpNetwork gives this network namespace the node's address, on an
// interface of its own, before the control plane starts listening on it.
func SetUpNetwork() error {
	for _, command := range []string{
		"link set lo up",
		// A veth pair, as no dummy interface may be available in a container.
		"link add " + nodeLink + " type veth peer name " + nodeLink + "-peer",
		"addr add " + Address + "/32 dev " + nodeLink,
		"link set " + nodeLink + " up",
		"link set " + nodeLink + "-peer up",
		// The node's own connections to Services: kube-proxy rewrites
		// them, but only once a route has taken them out of the socket.
		"route add " + simcluster.ServiceCIDR + " dev " + nodeLink,
	} {
		if out, err := exec.Command("ip", strings.Fields(command)...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", command, err, out)
		}
	}
	return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
}

// Start starts the node's processes, imports its images and returns once the
// node is Ready. The caller must Close it.
func Start(ctx context.Context, opts Options) (_ *Node, err error) {
	if opts.BinDir == "" || opts.Images == "" || opts.Cluster == nil {
		return nil, errors.New("realnode: BinDir, Images and Cluster are required")
	}
	n := &Node{dir: filepath.Join(opts.Cluster.DataDir, "node"), cgroupRoot: CgroupRoot()}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.Close())
		}
	}()
	for _, dir := range []string{n.logs(), filepath.Join(n.dir, "cni"), filepath.Join(n.dir, "kubelet")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	if err := n.writeConfig(opts.Cluster.Kubeconfig); err != nil {
		return nil, err
	}
	if err := makeCgroup(n.cgroupRoot); err != nil {
		return nil, err
	}

	if err := n.start("containerd", "containerd", "--config", n.path("containerd.toml")); err != nil {
		return nil, err
	}
	if err := n.waitFor(ctx, "containerd to listen", func(context.Context) (bool, error) {
		_, err := os.Stat(n.containerdSocket())
		return err == nil, nil
	}); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "ctr", "--address", n.containerdSocket(), "--namespace", "k8s.io",
		"images", "import", "--no-unpack", opts.Images).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("failed to import the images: %w: %s", err, out)
	}

	if err := n.start("kubelet", filepath.Join(opts.BinDir, "kubelet"),
		"--config="+n.path("kubelet.yaml"),
		"--kubeconfig="+opts.Cluster.Kubeconfig,
		"--root-dir="+n.path("kubelet"),
		"--hostname-override="+Name,
		"--node-ip="+Address,
		"--v=2",
	); err != nil {
		return nil, err
	}
	if err := n.start("kube-proxy", filepath.Join(opts.BinDir, "kube-proxy"), "--config="+n.path("kube-proxy.yaml")); err != nil {
		return nil, err
	}
	if err := n.start("coredns", filepath.Join(opts.BinDir, "coredns"), "-conf", n.path("Corefile")); err != nil {
		return nil, err
	}

	clientset, err := kubernetes.NewForConfig(opts.Cluster.Config)
	if err != nil {
		return nil, err
	}
	if err := n.createVolumes(ctx, clientset); err != nil {
		return nil, err
	}
	if err := n.waitFor(ctx, "the node to be Ready", func(ctx context.Context) (bool, error) {
		node, err := clientset.CoreV1().Nodes().Get(ctx, Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue && len(node.Spec.Taints) == 0, nil
			}
		}
		return false, nil
	}); err != nil {
		return nil, err
	}
	return n, nil
}

// Close stops the node's processes, newest first, kills its containers and
// their shims, and unmounts what they mounted in the node's directory, so
// that it can be removed.
func (n *Node) Close() error {
	var errs []error
	for _, p := range slices.Backward(n.processes) {
		if err := p.Stop(10 * time.Second); err != nil && !isTerminated(err) {
			errs = append(errs, err)
		}
	}
	n.processes = nil
	errs = append(errs, killCgroupTree(n.cgroupRoot), n.killShims(), unmountUnder(n.dir))
	return errors.Join(errs...)
}

// LogDir holds the output of the node's processes.
func (n *Node) LogDir() string { return n.logs() }

// killCgroupTree kills every process in the cgroup tree path, in every
// hierarchy, and removes the tree.
func killCgroupTree(path string) error {
	trees, err := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", path))
	if err != nil {
		return err
	}
	trees = append(trees, filepath.Join("/sys/fs/cgroup", path))
	for _, tree := range trees {
		if _, err := os.Stat(tree); err != nil {
			continue
		}
		for range 50 {
			var pids []int
			_ = filepath.WalkDir(tree, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.Name() == "cgroup.procs" {
					data, _ := os.ReadFile(p)
					for field := range strings.FieldsSeq(string(data)) {
						if pid, err := strconv.Atoi(field); err == nil {
							pids = append(pids, pid)
						}
					}
				}
				return nil
			})
			if len(pids) == 0 {
				break
			}
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
		}
		var dirs []string
		_ = filepath.WalkDir(tree, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for _, dir := range slices.Backward(dirs) {
			if err := os.Remove(dir); err != nil {
				return fmt.Errorf("failed to remove the cgroup %s: %w", dir, err)
			}
		}
	}
	return nil
}

// killShims kills the containerd shims of the node's containerd, which run
// on after it.
func (n *Node) killShims() error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(cmdline), "\x00")
		if strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") && slices.Contains(args, n.containerdSocket()) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return nil
}

// unmountUnder unmounts every mount point under dir, deepest first.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for line := range strings.Lines(string(data)) {
		// The fifth field is the mount point, with spaces escaped.
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, point := range points {
		if err := syscall.Unmount(point, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("failed to unmount %s: %w", point, err))
		}
	}
	return errors.Join(errs...)
}

// isTerminated reports whether err is only how a stopped process exited.
func isTerminated(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit)
}

func (n *Node) path(name string) string { return filepath.Join(n.dir, name) }
func (n *Node) logs() string            { return n.path("logs") }
func (n *Node) containerdSocket() string {
	return n.path("containerd/containerd.sock")
}

func (n *Node) start(name, binary string, args ...string) error {
	p, err := proc.Start(name, filepath.Join(n.logs(), name+".log"), binary, args...)
	if err != nil {
		return err
	}
	n.processes = append(n.processes, p)
	return nil
}

// waitFor polls done until it reports true, a process of the node exits, or
// ctx or two minutes run out.
func (n *Node) waitFor(ctx context.Context, what string, done func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, p := range n.processes {
			if err := p.Exited(); err != nil {
				return fmt.Errorf("waiting for %s: %w (logs in %s)", what, err, n.logs())
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
			return fmt.Errorf("waiting for %s: %w (logs in %s)", what, ctx.Err(), n.logs())
		case <-tick.C:
		}
	}
}
