// Package ring measures, with the consistent-hashing client Mimir, Loki and
// Thanos use, how many keys change server when the server list the operator
// publishes changes: the cost of a pod restart, a rollout or a scale step,
// for each workload.
package ring

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/dskit/cache"
	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

const keys = 50_000

// cluster is the pods of a Memcached and the server list the operator
// published for them.
type cluster struct {
	mc   *cachev1alpha1.Memcached
	pods []corev1.Pod
	next int // for new pod names and addresses
	rng  *rand.Rand
}

func newCluster(workload cachev1alpha1.WorkloadKind, size int32, seed uint64) *cluster {
	c := &cluster{rng: rand.New(rand.NewPCG(seed, 1)), mc: &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: "ns"},
		Spec:       cachev1alpha1.MemcachedSpec{Size: size, Workload: workload, ScaleDownDrainSeconds: ptr.To[int32](0)},
	}}
	for range size {
		c.addPod()
	}
	c.publish()
	return c
}

// addPod adds a ready pod, named as its workload names it, with a new address.
func (c *cluster) addPod() {
	name := fmt.Sprintf("cache-7d9f6c-%05x", c.rng.IntN(1<<20))
	owner := "ReplicaSet"
	if c.mc.Spec.Workload == cachev1alpha1.WorkloadStatefulSet {
		name, owner = fmt.Sprintf("cache-%d", len(c.pods)), "StatefulSet"
	}
	c.pods = append(c.pods, c.pod(name, owner))
}

func (c *cluster) pod(name, owner string) corev1.Pod {
	c.next++
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: resources.SelectorLabels(c.mc),
			OwnerReferences: []metav1.OwnerReference{{Kind: owner, Name: "cache", Controller: ptr.To(true)}}},
		Status: corev1.PodStatus{PodIP: fmt.Sprintf("10.244.%d.%d", c.next/250, c.next%250+1),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// restart replaces pod i, as a crash, an eviction or a rollout does: a
// Deployment's pod comes back with a new name; a StatefulSet's with its own.
func (c *cluster) restart(i int) {
	if c.mc.Spec.Workload == cachev1alpha1.WorkloadStatefulSet {
		c.pods[i] = c.pod(c.pods[i].Name, "StatefulSet")
		return
	}
	c.pods = append(c.pods[:i], c.pods[i+1:]...)
	c.addPod()
}

// scale changes spec.size and the pods: a StatefulSet removes its last pods,
// a Deployment any of them.
func (c *cluster) scale(size int32) {
	for int32(len(c.pods)) > size {
		i := len(c.pods) - 1
		if c.mc.Spec.Workload != cachev1alpha1.WorkloadStatefulSet {
			i = c.rng.IntN(len(c.pods))
		}
		c.pods = append(c.pods[:i], c.pods[i+1:]...)
	}
	c.mc.Spec.Size = size
	for int32(len(c.pods)) < size {
		c.addPod()
	}
	c.publish()
}

// publish has the operator plan the server list from the pods.
func (c *cluster) publish() {
	c.mc.Status.ServerList = status.PlanServers(c.mc, status.Observed{Pods: c.pods}, metav1.Now()).List
}

// resolver answers the cluster DNS names of the pods in memory: the stable
// name of each StatefulSet pod resolves to the pod's address.
type resolver struct {
	mu      sync.Mutex
	records map[string][4]byte
}

func (r *resolver) update(c *cluster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = map[string][4]byte{}
	for i, p := range c.pods {
		if c.mc.Spec.Workload != cachev1alpha1.WorkloadStatefulSet {
			continue
		}
		host, _, _ := net.SplitHostPort(status.StableName(c.mc, i))
		r.records[host+"."] = [4]byte(net.ParseIP(p.Status.PodIP).To4())
	}
}

// dial hands the Go resolver one end of an in-memory pipe, served by r:
// nothing leaves the process.
func (r *resolver) dial(context.Context, string, string) (net.Conn, error) {
	client, server := net.Pipe()
	go r.serve(server)
	return client, nil
}

// serve answers queries framed as DNS over TCP, as the Go resolver sends
// them on a connection that is not a packet connection.
func (r *resolver) serve(conn net.Conn) {
	defer conn.Close()
	for {
		var length [2]byte
		if _, err := io.ReadFull(conn, length[:]); err != nil {
			return
		}
		query := make([]byte, binary.BigEndian.Uint16(length[:]))
		if _, err := io.ReadFull(conn, query); err != nil {
			return
		}
		answer, err := r.answer(query)
		if err != nil {
			return
		}
		if _, err := conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(answer))), answer...)); err != nil {
			return
		}
	}
}

func (r *resolver) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	header, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	ip, known := r.records[q.Name.String()]
	r.mu.Unlock()
	h := dnsmessage.Header{ID: header.ID, Response: true, Authoritative: true}
	if !known {
		h.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, h)
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if known && q.Type == dnsmessage.TypeA {
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 30},
			dnsmessage.AResource{A: ip}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// placement returns, for each key, the pod whose cache holds it, as the
// jump-hash selector of grafana/dskit (Mimir, Loki, Thanos) picks it from the
// published list; and the instance of that pod, which changes when the pod
// is replaced.
func placement(t *testing.T, r *resolver, c *cluster) (pods, instances []string) {
	t.Helper()
	r.update(c)
	var selector cache.MemcachedJumpHashSelector
	if err := selector.SetServers(c.mc.Status.ServerList...); err != nil {
		t.Fatalf("the client refuses the list %q: %v", c.mc.Status.ServerList, err)
	}
	byAddress := map[string]corev1.Pod{}
	for _, p := range c.pods {
		byAddress[net.JoinHostPort(p.Status.PodIP, "11211")] = p
	}
	pods, instances = make([]string, keys), make([]string, keys)
	for i := range keys {
		addr, err := selector.PickServer(fmt.Sprintf("key-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		p := byAddress[addr.String()]
		pods[i], instances[i] = p.Name, p.Status.PodIP
	}
	return pods, instances
}

// movement returns the share of keys whose pod changed, and of those whose
// pod changed or was replaced: a replaced pod starts with an empty cache.
func movement(beforePods, beforeInstances, afterPods, afterInstances []string) (moved, cold float64) {
	var m, c int
	for i := range beforePods {
		if beforePods[i] != afterPods[i] {
			m++
		}
		if beforePods[i] != afterPods[i] || beforeInstances[i] != afterInstances[i] {
			c++
		}
	}
	return float64(m) / keys, float64(c) / keys
}

// TestKeyMovement measures the share of keys that change server for a pod
// restart, a rollout and a scale step, for each workload, over several
// random clusters, and checks that stable identities reach the least a
// consistent-hashing client can do: no key moves when a pod restarts or all
// pods roll, and about 1/N when a pod is added or removed.
func TestKeyMovement(t *testing.T) {
	r := &resolver{}
	previous := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: r.dial}
	t.Cleanup(func() { net.DefaultResolver = previous })

	type result struct{ moved, cold float64 }
	events := []struct {
		name   string
		size   int32
		change func(*cluster)
	}{
		{"pod restart", 5, func(c *cluster) { c.restart(c.rng.IntN(len(c.pods))); c.publish() }},
		{"rollout", 5, func(c *cluster) {
			for i := range c.pods {
				c.restart(i)
			}
			c.publish()
		}},
		{"scale 5→4", 5, func(c *cluster) { c.scale(4) }},
		{"scale 4→5", 4, func(c *cluster) { c.scale(5) }},
	}
	const trials = 20
	results := map[string]map[cachev1alpha1.WorkloadKind]result{}
	for _, e := range events {
		results[e.name] = map[cachev1alpha1.WorkloadKind]result{}
		for _, workload := range []cachev1alpha1.WorkloadKind{cachev1alpha1.WorkloadDeployment, cachev1alpha1.WorkloadStatefulSet} {
			var sum result
			for trial := range trials {
				c := newCluster(workload, e.size, uint64(trial))
				beforePods, beforeInstances := placement(t, r, c)
				e.change(c)
				afterPods, afterInstances := placement(t, r, c)
				moved, cold := movement(beforePods, beforeInstances, afterPods, afterInstances)
				sum.moved += moved / trials
				sum.cold += cold / trials
			}
			results[e.name][workload] = sum
		}
	}

	var table strings.Builder
	fmt.Fprintf(&table, "\n| event | Deployment: keys moved | StatefulSet: keys moved | StatefulSet: keys on a replaced pod |\n|---|---|---|---|\n")
	for _, e := range events {
		d, s := results[e.name][cachev1alpha1.WorkloadDeployment], results[e.name][cachev1alpha1.WorkloadStatefulSet]
		fmt.Fprintf(&table, "| %s | %.1f%% | %.1f%% | %.1f%% |\n", e.name, 100*d.moved, 100*s.moved, 100*(s.cold-s.moved))
	}
	t.Logf("Share of %d keys that change server (grafana/dskit jump hash, N=5, mean of %d random clusters):%s",
		keys, trials, table.String())

	check := func(event string, workload cachev1alpha1.WorkloadKind, lowest, highest float64) {
		if got := results[event][workload].moved; got < lowest || got > highest {
			t.Errorf("%s, %s: %.3f of the keys moved, want %.2f to %.2f", event, workload, got, lowest, highest)
		}
	}
	check("pod restart", cachev1alpha1.WorkloadStatefulSet, 0, 0)
	check("rollout", cachev1alpha1.WorkloadStatefulSet, 0, 0)
	check("scale 5→4", cachev1alpha1.WorkloadStatefulSet, 0.18, 0.22)
	check("scale 4→5", cachev1alpha1.WorkloadStatefulSet, 0.18, 0.22)
	check("pod restart", cachev1alpha1.WorkloadDeployment, 0.1, 1.001)
	check("rollout", cachev1alpha1.WorkloadDeployment, 0.9, 1.001)
}
