package node

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/realnode"
)

// newNamespace creates a namespace that is deleted after the test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "node-"}}
	NewWithT(t).Expect(k8sClient.Create(t.Context(), ns)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}

// createMemcached creates a Memcached of size pods, changed by mutate.
func createMemcached(t *testing.T, ns, name string, size int32, mutate func(*cachev1alpha1.MemcachedSpec)) *cachev1alpha1.Memcached {
	t.Helper()
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: cachev1alpha1.MemcachedSpec{Size: size}}
	if mutate != nil {
		mutate(&mc.Spec)
	}
	NewWithT(t).Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	return mc
}

// waitAvailable waits until mc is Available with size ready pods, all
// listed in its server list, and returns it.
func waitAvailable(t *testing.T, mc *cachev1alpha1.Memcached, size int) *cachev1alpha1.Memcached {
	t.Helper()
	current := &cachev1alpha1.Memcached{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		g.Expect(meta.IsStatusConditionTrue(current.Status.Conditions, cachev1alpha1.ConditionAvailable)).To(BeTrue(),
			"%v", current.Status.Conditions)
		g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionProgressing)).To(BeTrue(),
			"%v", current.Status.Conditions)
		g.Expect(current.Status.ReadyReplicas).To(BeEquivalentTo(size))
		g.Expect(current.Status.ServerList).To(HaveLen(size))
	}, 3*time.Minute).Should(Succeed())
	return current
}

// pods returns the pods of mc that are not being deleted.
func pods(g Gomega, ctx context.Context, mc *cachev1alpha1.Memcached) []corev1.Pod {
	list := &corev1.PodList{}
	g.Expect(k8sClient.List(ctx, list, client.InNamespace(mc.Namespace),
		client.MatchingLabels{"app.kubernetes.io/instance": mc.Name, "app.kubernetes.io/name": "memcached"})).To(Succeed())
	var live []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// clusterDNS resolves names through the node's CoreDNS, as pods do.
var clusterDNS = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, net.JoinHostPort(realnode.Address, "53"))
}}

// resolve returns the ip:port of every server of a server list, looking up
// names (the StatefulSet's, relative to the cluster domain) in the cluster's
// DNS.
func resolve(ctx context.Context, servers []string) ([]string, error) {
	addresses := make([]string, 0, len(servers))
	for _, server := range servers {
		host, port, err := net.SplitHostPort(server)
		if err != nil {
			return nil, err
		}
		if net.ParseIP(host) == nil {
			ips, err := clusterDNS.LookupHost(ctx, host+"."+realnode.ClusterDomain+".")
			if err != nil {
				return nil, err
			}
			if len(ips) != 1 {
				return nil, fmt.Errorf("%s has %d addresses: %v", host, len(ips), ips)
			}
			host = ips[0]
		}
		addresses = append(addresses, net.JoinHostPort(host, port))
	}
	return addresses, nil
}

// newClient returns a memcached client of the servers, which hashes keys
// over them in their order.
func newClient(servers ...string) *memcache.Client {
	c := memcache.New(servers...)
	c.Timeout = 2 * time.Second
	return c
}

// key returns the i-th key of a test.
func key(i int) string { return "key-" + strconv.Itoa(i) }

// keyCount is how many keys a test sets.
const keyCount = 1000

// setKeys sets keyCount keys, each to its own name.
func setKeys(g Gomega, c *memcache.Client) {
	for i := range keyCount {
		g.Expect(c.Set(&memcache.Item{Key: key(i), Value: []byte(key(i))})).To(Succeed())
	}
}

// hits returns how many of the keyCount keys c gets back with their value.
func hits(c *memcache.Client) int {
	found := 0
	for i := range keyCount {
		item, err := c.Get(key(i))
		if err == nil && string(item.Value) == key(i) {
			found++
		}
	}
	return found
}

// command sends one text-protocol command to a memcached and returns the
// first line of its answer.
func command(address, cmd string) (string, error) {
	answers, err := commands(address, cmd)
	if err != nil {
		return "", err
	}
	return answers[0], nil
}

// commands sends text-protocol commands to a memcached, one after the other
// on one connection, and returns the first line of each answer.
func commands(address string, cmds ...string) ([]string, error) {
	conn, err := net.DialTimeout("tcp", address, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	reader := bufio.NewReader(conn)
	var answers []string
	for _, cmd := range cmds {
		if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
			return nil, err
		}
		line, err := reader.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("no answer to %q: %w", cmd, err)
		}
		answers = append(answers, strings.TrimRight(line, "\r\n"))
	}
	return answers, nil
}

// killContainerProcess kills, with SIGKILL, the process named comm in a
// container of the pod with the given UID, as an out-of-memory kill would.
func killContainerProcess(podUID, comm string) error {
	pid, err := containerProcess(podUID, comm)
	if err != nil {
		return err
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// containerProcess returns the process named comm in a container of the pod
// with the given UID: the node sees the processes of its containers, each in
// a cgroup of its pod.
func containerProcess(podUID, comm string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		name, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		cgroup, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if strings.TrimSpace(string(name)) == comm && strings.Contains(string(cgroup), "pod"+podUID) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process %s runs in pod %s", comm, podUID)
}

// containerProcessUID returns the real user ID of the process named comm in
// a container of the pod with the given UID.
func containerProcessUID(podUID, comm string) (string, error) {
	pid, err := containerProcess(podUID, comm)
	if err != nil {
		return "", err
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(status)) {
		if ids, ok := strings.CutPrefix(line, "Uid:"); ok {
			return strings.Fields(ids)[0], nil
		}
	}
	return "", fmt.Errorf("no Uid in the status of process %d", pid)
}

// inPodNetwork runs a command of the node in the network namespace of the
// process pid, which is a container's.
func inPodNetwork(pid int, command string, args ...string) error {
	out, err := exec.Command("nsenter", append([]string{"--net=/proc/" + strconv.Itoa(pid) + "/ns/net", command}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %w: %s", command, args, err, out)
	}
	return nil
}
