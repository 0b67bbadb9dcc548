package node

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/realnode"
	"example.com/memcached-operator/test/internal/testca"
)

// The release's manager runs in a pod of the node, as its ServiceAccount,
// with its probes passing, and leads.
func TestTheReleaseRunsOnTheNode(t *testing.T) {
	g := NewWithT(t)
	list := &corev1.PodList{}
	g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(operatorNamespace))).To(Succeed())
	list.Items = slices.DeleteFunc(list.Items, func(p corev1.Pod) bool { return p.DeletionTimestamp != nil })
	g.Expect(list.Items).To(HaveLen(1))
	manager := list.Items[0]
	g.Expect(manager.Spec.NodeName).To(Equal(realnode.Name))
	g.Expect(manager.Spec.ServiceAccountName).To(Equal(managerName))
	g.Expect(manager.Status.Phase).To(Equal(corev1.PodRunning))
	g.Expect(isReady(&manager)).To(BeTrue())
	g.Expect(manager.Spec.Containers[0].ReadinessProbe).NotTo(BeNil())
	g.Expect(manager.Status.ContainerStatuses[0].RestartCount).To(BeZero())

	lease := &coordinationv1.Lease{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: operatorNamespace, Name: "memcached-operator.cache.example.com"}, lease)).To(Succeed())
		g.Expect(ptr.Deref(lease.Spec.HolderIdentity, "")).To(HavePrefix(manager.Name))
	}).Should(Succeed())
}

// The getting-started sample, unchanged: three memcached pods serve every key
// a client sets, over status.serverList and through the Service.
func TestTheSampleServesItsKeys(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	out, err := runKubectl("apply", "--namespace", ns, "-f", "config/samples/cache_v1alpha1_memcached.yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "example-memcached"}}
	mc = waitAvailable(t, mc, 3)
	running := pods(g, t.Context(), mc)
	g.Expect(running).To(HaveLen(3))
	for _, p := range running {
		g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
		g.Expect(isReady(&p)).To(BeTrue())
		g.Expect(p.Spec.NodeName).To(Equal(realnode.Name))
		g.Expect(p.Spec.Containers[0].Image).To(Equal(realnode.MemcachedImage))
	}
	g.Expect(mc.Status.Nodes).To(HaveLen(3))

	const n = keyCount
	c := newClient(mc.Status.ServerList...)
	setKeys(g, c)
	g.Expect(hits(c)).To(Equal(n))
	// The keys are spread over the pods, and each pod serves its share.
	total := 0
	for _, server := range mc.Status.ServerList {
		share := hits(newClient(server))
		g.Expect(share).To(BeNumerically(">", 0), "%s holds none of the keys", server)
		total += share
	}
	g.Expect(total).To(Equal(n))

	// Through the Service: each connection goes to one of the pods, and
	// each key set through it is on exactly one.
	service := &corev1.Service{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: mc.Name}, service)).To(Succeed())
	address := net.JoinHostPort(service.Spec.ClusterIP, "11211")
	// kube-proxy programs the Service a moment after its endpoints are ready.
	g.Eventually(func() (string, error) { return command(address, "version") }).Should(HavePrefix("VERSION "))
	through := newClient(address)
	for i := range 100 {
		g.Expect(through.Set(&memcache.Item{Key: fmt.Sprintf("svc-%d", i), Value: []byte("v")})).To(Succeed())
	}
	for i := range 100 {
		holders := 0
		for _, server := range mc.Status.ServerList {
			if _, err := newClient(server).Get(fmt.Sprintf("svc-%d", i)); err == nil {
				holders++
			}
		}
		g.Expect(holders).To(Equal(1), "svc-%d is on %d pods", i, holders)
	}
}

// The StatefulSet's server list names its pods. A client in a pod, given the
// list as it is, finds each name through the cluster's DNS and the pod's
// search domains, at its pod's address, and reads back every key it set.
func TestAClientInAPodUsesTheServerListByName(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "ring", 3, func(s *cachev1alpha1.MemcachedSpec) { s.Workload = cachev1alpha1.WorkloadStatefulSet })
	mc = waitAvailable(t, mc, 3)

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "client"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "client", Image: realnode.ClientImage,
				Args: []string{"--servers", strings.Join(mc.Status.ServerList, ","), "--keys", strconv.Itoa(keyCount)},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	}
	g.Expect(k8sClient.Create(t.Context(), pod)).To(Succeed())
	g.Eventually(func(g Gomega) corev1.PodPhase {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		return pod.Status.Phase
	}).Should(BeElementOf(corev1.PodSucceeded, corev1.PodFailed))
	logs := podLogs(g, t.Context(), ns, pod.Name, "client")
	g.Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded), logs)

	want := map[string]string{}
	for _, p := range pods(g, t.Context(), mc) {
		name := fmt.Sprintf("%s.%s.%s.svc:11211", p.Name, p.Spec.Subdomain, ns)
		want[name] = net.JoinHostPort(p.Status.PodIP, "11211")
	}
	got := map[string]string{}
	for line := range strings.Lines(logs) {
		if fields := strings.Fields(line); len(fields) == 3 && fields[0] == "server" {
			got[fields[1]] = fields[2]
		}
	}
	g.Expect(got).To(Equal(want))
	g.Expect(logs).To(ContainSubstring(fmt.Sprintf("hits %d of %d", keyCount, keyCount)))
}

// With spec.proxy, a client that knows one address, the Service <name>,
// reads back every key it set, and the keys are spread over every server of
// the ring: the proxies, memcached's own, route each key to one server.
func TestAClientOfTheServiceGetsTheWholeRingThroughTheProxies(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "proxied", 3, func(s *cachev1alpha1.MemcachedSpec) {
		s.Workload = cachev1alpha1.WorkloadStatefulSet
		s.Proxy = &cachev1alpha1.ProxySpec{Enabled: true}
	})
	mc = waitAvailable(t, mc, 3)
	g.Expect(mc.Status.ServerList).To(HaveLen(3))
	waitProxiesRolledOut(t, mc, "")
	g.Eventually(func(g Gomega) int32 {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), mc)).To(Succeed())
		g.Expect(mc.Status.Proxy).NotTo(BeNil())
		return mc.Status.Proxy.ReadyReplicas
	}).Should(Equal(int32(cachev1alpha1.DefaultProxyReplicas)))

	service := &corev1.Service{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: mc.Name}, service)).To(Succeed())
	address := net.JoinHostPort(service.Spec.ClusterIP, "11211")
	waitServiceServes(g, address)

	through := newClient(address)
	setKeys(g, through)
	g.Expect(hits(through)).To(Equal(keyCount), "keys set through the Service did not all come back through it")

	// Each key is on exactly one server, and every server holds some.
	servers, err := resolve(t.Context(), mc.Status.ServerList)
	g.Expect(err).NotTo(HaveOccurred())
	total := 0
	for _, server := range servers {
		share := hits(newClient(server))
		g.Expect(share).To(BeNumerically(">", 0), "%s holds none of the keys", server)
		total += share
	}
	g.Expect(total).To(Equal(keyCount), "keys are held by more than one server, or by none")

	// A scale-up changes the routes, and the proxies are replaced one at a
	// time while a client reads and writes through the Service all along:
	// what it sees is measured. Its keys of the moved share become misses.
	var requests, failures atomic.Int64
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := newClient(address)
		for i := 0; ctx.Err() == nil; i++ {
			k := key(i % keyCount)
			requests.Add(1)
			if err := c.Set(&memcache.Item{Key: k, Value: []byte(k)}); err != nil {
				failures.Add(1)
			}
		}
	}()
	before := getProxyTemplateHash(g, t.Context(), mc)
	patched := mc.DeepCopy()
	patched.Spec.Size = 4
	g.Expect(k8sClient.Patch(t.Context(), patched, client.MergeFrom(mc))).To(Succeed())
	mc = waitAvailable(t, patched, 4)
	waitProxiesRolledOut(t, mc, before)
	stop()
	<-done
	t.Logf("Sets through the Service while the proxies were replaced for a scale from 3 to 4: %d, failed %d (%.3f%%)",
		requests.Load(), failures.Load(), 100*float64(failures.Load())/float64(max(requests.Load(), 1)))
	g.Expect(requests.Load()).To(BeNumerically(">", 0))
	g.Expect(float64(failures.Load())).To(BeNumerically("<", 0.01*float64(requests.Load())),
		"more than 1% of the sets failed while the proxies were replaced")
	waitServiceServes(g, address)
	through = newClient(address)
	setKeys(g, through)
	g.Expect(hits(through)).To(Equal(keyCount), "after the scale, keys set through the Service did not all come back")
}

// waitServiceServes waits until 20 new connections in a row to the Service
// at address store and read a key: kube-proxy programs a Service a moment
// after its endpoints change, and until then a new connection may still
// reach a proxy that is going.
func waitServiceServes(g Gomega, address string) {
	g.Eventually(func(g Gomega) {
		for i := range 20 {
			through := newClient(address)
			g.Expect(through.Set(&memcache.Item{Key: "probe", Value: []byte("v")})).To(Succeed(), "connection %d", i)
			_, err := through.Get("probe")
			g.Expect(err).NotTo(HaveOccurred())
		}
	}).Should(Succeed())
}

// waitProxiesRolledOut waits until the proxies of mc all run the routes of
// its whole server list, on a routes digest other than previous.
func waitProxiesRolledOut(t *testing.T, mc *cachev1alpha1.Memcached, previous string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		cm := &corev1.ConfigMap{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: mc.Namespace, Name: mc.Name + "-proxy"}, cm)).To(Succeed())
		for _, server := range mc.Status.ServerList {
			g.Expect(cm.Data["routes.lua"]).To(ContainSubstring(`"`+server+`"`), "the routes lack %s", server)
		}
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: mc.Namespace, Name: mc.Name + "-proxy"}, d)).To(Succeed())
		g.Expect(d.Spec.Template.Annotations).NotTo(HaveKeyWithValue("cache.example.com/proxy-routes-digest", previous))
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		g.Expect(d.Status.UpdatedReplicas).To(Equal(int32(cachev1alpha1.DefaultProxyReplicas)))
		g.Expect(d.Status.Replicas).To(Equal(int32(cachev1alpha1.DefaultProxyReplicas)))
		g.Expect(d.Status.ReadyReplicas).To(Equal(int32(cachev1alpha1.DefaultProxyReplicas)))

		// The Service's endpoints are the new proxies only, none of the old
		// ones serving their last seconds with the previous routes.
		slices := &discoveryv1.EndpointSliceList{}
		g.Expect(k8sClient.List(t.Context(), slices, client.InNamespace(mc.Namespace),
			client.MatchingLabels{discoveryv1.LabelServiceName: mc.Name})).To(Succeed())
		current := 0
		for _, slice := range slices.Items {
			for _, e := range slice.Endpoints {
				g.Expect(e.TargetRef).NotTo(BeNil())
				pod := &corev1.Pod{}
				g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: mc.Namespace, Name: e.TargetRef.Name}, pod)).To(Succeed())
				g.Expect(pod.Annotations).To(HaveKeyWithValue("cache.example.com/proxy-routes-digest",
					d.Spec.Template.Annotations["cache.example.com/proxy-routes-digest"]), "the Service still has %s", pod.Name)
				g.Expect(ptr.Deref(e.Conditions.Terminating, false)).To(BeFalse())
				current++
			}
		}
		g.Expect(current).To(Equal(cachev1alpha1.DefaultProxyReplicas))
	}, 3*time.Minute).Should(Succeed())
}

// getProxyTemplateHash returns the routes digest of the proxies' pod template.
func getProxyTemplateHash(g Gomega, ctx context.Context, mc *cachev1alpha1.Memcached) string {
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: mc.Namespace, Name: mc.Name + "-proxy"}, d)).To(Succeed())
	return d.Spec.Template.Annotations["cache.example.com/proxy-routes-digest"]
}

// podLogs returns the logs of a container.
func podLogs(g Gomega, ctx context.Context, ns, pod, container string) string {
	data, err := clientset.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	return string(data)
}

// A pod of a warm-restart StatefulSet deleted: its preStop hook saves the
// memory to its volume, and the pod that replaces it serves the keys again.
func TestWarmRestartServesTheKeysAgain(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "warm", 3, func(s *cachev1alpha1.MemcachedSpec) {
		s.Workload = cachev1alpha1.WorkloadStatefulSet
		s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
	})
	waitAvailable(t, mc, 3)

	const n = keyCount
	before := &corev1.Pod{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "warm-1"}, before)).To(Succeed())
	setKeys(g, newClient(net.JoinHostPort(before.Status.PodIP, "11211")))

	g.Expect(k8sClient.Delete(t.Context(), before)).To(Succeed())
	after := &corev1.Pod{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "warm-1"}, after)).To(Succeed())
		g.Expect(after.UID).NotTo(Equal(before.UID))
		g.Expect(isReady(after)).To(BeTrue())
	}).Should(Succeed())
	served := hits(newClient(net.JoinHostPort(after.Status.PodIP, "11211")))
	fmt.Printf("Warm restart: %d of %d keys served again by the new warm-1 (%.1f%%)\n", served, n, 100*float64(served)/n)
	g.Expect(served).To(BeNumerically(">=", n*99/100))
}

// A spec change rolls every pod while a client reads all the time; the hit
// ratio during the rollout shows what each kind of workload keeps.
func TestHitRatioDuringARollout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mutate   func(*cachev1alpha1.MemcachedSpec)
		keepsAll bool
	}{
		{name: "Deployment"},
		{name: "StatefulSet", mutate: func(s *cachev1alpha1.MemcachedSpec) { s.Workload = cachev1alpha1.WorkloadStatefulSet }},
		{name: "StatefulSet with warm restart", keepsAll: true, mutate: func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			mc := waitAvailable(t, createMemcached(t, ns, "rolled", 3, tc.mutate), 3)
			const n = keyCount
			servers, err := resolve(t.Context(), mc.Status.ServerList)
			g.Expect(err).NotTo(HaveOccurred())
			setKeys(g, newClient(servers...))

			reader := startReader(t, mc)
			start := time.Now()
			current := mc.DeepCopy()
			current.Spec.Resources = &cachev1alpha1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m")}}
			g.Expect(k8sClient.Patch(t.Context(), current, client.MergeFrom(mc))).To(Succeed())
			mc = waitAvailable(t, current, 3)
			gets, hitsDuring := reader.stop()
			servers, err = resolve(t.Context(), mc.Status.ServerList)
			g.Expect(err).NotTo(HaveOccurred())
			kept := hits(newClient(servers...))
			fmt.Printf("Rollout of a %s: %.1f%% of %d gets hit during its %.0fs; %.1f%% of the keys are there after it\n",
				tc.name, 100*float64(hitsDuring)/float64(gets), gets, time.Since(start).Seconds(), 100*float64(kept)/n)
			g.Expect(gets).To(BeNumerically(">", 100))
			for _, p := range pods(g, t.Context(), mc) {
				g.Expect(p.Spec.Containers[0].Resources.Requests.Cpu().String()).To(Equal("20m"), "%s was not rolled", p.Name)
			}
			if tc.keepsAll {
				g.Expect(kept).To(BeNumerically(">=", n*99/100))
			}
		})
	}
}

// reader gets keys of a Memcached all the time, from the servers its status
// lists, as a client that follows the server list does.
type reader struct {
	gets, hits atomic.Int64
	done       chan struct{}
	wg         sync.WaitGroup
}

func startReader(t *testing.T, mc *cachev1alpha1.Memcached) *reader {
	r := &reader{done: make(chan struct{})}
	r.wg.Go(func() {
		ctx := context.Background()
		var c = newClient()
		refreshed := time.Time{}
		for i := 0; ; i = (i + 1) % keyCount {
			select {
			case <-r.done:
				return
			default:
			}
			if time.Since(refreshed) > 200*time.Millisecond {
				current := &cachev1alpha1.Memcached{}
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(mc), current); err == nil {
					if servers, err := resolve(ctx, current.Status.ServerList); err == nil && len(servers) > 0 {
						c = newClient(servers...)
						c.Timeout = 200 * time.Millisecond
					}
				}
				refreshed = time.Now()
			}
			r.gets.Add(1)
			if item, err := c.Get(key(i)); err == nil && string(item.Value) == key(i) {
				r.hits.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	t.Cleanup(func() { r.stop() })
	return r
}

// stop stops the reader and returns how many gets it made and how many hit.
func (r *reader) stop() (gets, hits int64) {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	r.wg.Wait()
	return r.gets.Load(), r.hits.Load()
}

// The exporter reports memcached_up 1 for every memcached pod.
func TestTheExporterReportsEveryPodUp(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "watched", 2, func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	})
	mc = waitAvailable(t, mc, 2)
	var exporter string
	g.Eventually(func(g Gomega) {
		list := &corev1.PodList{}
		g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(ns))).To(Succeed())
		for _, p := range list.Items {
			if p.Spec.Containers[0].Name == "exporter" && isReady(&p) {
				g.Expect(p.Spec.Containers[0].Image).To(Equal(realnode.ExporterImage))
				exporter = p.Status.PodIP
			}
		}
		g.Expect(exporter).NotTo(BeEmpty())
	}).Should(Succeed())
	for _, p := range pods(g, t.Context(), mc) {
		url := fmt.Sprintf("http://%s/scrape?target=%s", net.JoinHostPort(exporter, "9150"), net.JoinHostPort(p.Status.PodIP, "11211"))
		g.Eventually(func(g Gomega) string {
			resp, err := http.Get(url)
			g.Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			g.Expect(err).NotTo(HaveOccurred())
			return string(body)
		}).Should(MatchRegexp(`(?m)^memcached_up 1$`), "%s is not up", p.Name)
	}
}

// A memcached process killed: the kubelet restarts its container, the pod
// leaves the ready endpoints until its readiness probe passes again, and it
// serves again.
func TestAKilledMemcachedIsRestarted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := waitAvailable(t, createMemcached(t, ns, "killed", 1, nil), 1)
	pod := pods(g, t.Context(), mc)[0]
	killed := time.Now()
	g.Expect(killContainerProcess(string(pod.UID), "memcached")).To(Succeed())

	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(&pod), &pod)).To(Succeed())
		g.Expect(pod.Status.ContainerStatuses[0].RestartCount).To(BeEquivalentTo(1))
		g.Expect(isReady(&pod)).To(BeTrue())
	}).Should(Succeed())
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			g.Expect(c.LastTransitionTime.Time).To(BeTemporally(">=", killed.Truncate(time.Second)),
				"the pod stayed ready while its memcached was down")
		}
	}
	answer, err := command(net.JoinHostPort(pod.Status.PodIP, "11211"), "version")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(answer).To(HavePrefix("VERSION "))
	waitAvailable(t, mc, 1)
}

// With spec.auth, memcached answers only a client that logged in with a
// user and password of the Secret; with spec.tls and a client CA, only a
// TLS client with a certificate the CA signed.
func TestAuthAndTLSOnRealPods(t *testing.T) {
	t.Run("auth", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		users := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"},
			Data: map[string][]byte{"app": []byte("s3cret")}}
		g.Expect(k8sClient.Create(t.Context(), users)).To(Succeed())
		mc := waitAvailable(t, createMemcached(t, ns, "guarded", 1, func(s *cachev1alpha1.MemcachedSpec) {
			s.Auth = &cachev1alpha1.AuthSpec{SecretName: users.Name}
		}), 1)
		address := mc.Status.ServerList[0]
		set := "set greeting 0 0 5\r\nhello"
		login := func(user, password string) string {
			return fmt.Sprintf("set auth 0 0 %d\r\n%s %s", len(user)+1+len(password), user, password)
		}
		g.Expect(command(address, set)).To(HavePrefix("CLIENT_ERROR"), "a client that did not log in")
		g.Expect(command(address, login("app", "wrong"))).To(HavePrefix("CLIENT_ERROR"), "a wrong password")
		g.Expect(commands(address, login("app", "s3cret"), set)).To(Equal([]string{"STORED", "STORED"}))
	})

	t.Run("TLS with client certificates", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		serverCA, clientCA := testca.New(t, "server CA"), testca.New(t, "client CA")
		cert, key := serverCA.Issue(t, "memcached", x509.ExtKeyUsageServerAuth, "memcached")
		g.Expect(k8sClient.Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "serving"},
			Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}})).To(Succeed())
		g.Expect(k8sClient.Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clients"},
			Data: map[string][]byte{"ca.crt": clientCA.CertPEM}})).To(Succeed())
		mc := waitAvailable(t, createMemcached(t, ns, "private", 1, func(s *cachev1alpha1.MemcachedSpec) {
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "serving", ClientCASecretName: "clients"}
		}), 1)
		address := mc.Status.ServerList[0]

		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(serverCA.CertPEM)
		version := func(certificates ...tls.Certificate) (string, error) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", address,
				&tls.Config{RootCAs: roots, ServerName: "memcached", Certificates: certificates})
			if err != nil {
				return "", err
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := conn.Write([]byte("version\r\n")); err != nil {
				return "", err
			}
			return bufio.NewReader(conn).ReadString('\n')
		}
		clientCert, clientKey := clientCA.Issue(t, "app", x509.ExtKeyUsageClientAuth)
		pair, err := tls.X509KeyPair(clientCert, clientKey)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(version(pair)).To(HavePrefix("VERSION "))
		_, err = version()
		g.Expect(err).To(HaveOccurred(), "a client without a certificate was answered")
		otherCert, otherKey := testca.New(t, "another CA").Issue(t, "app", x509.ExtKeyUsageClientAuth)
		other, err := tls.X509KeyPair(otherCert, otherKey)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = version(other)
		g.Expect(err).To(HaveOccurred(), "a client with a certificate of another CA was answered")
		plain, _ := command(address, "version")
		g.Expect(plain).NotTo(HavePrefix("VERSION"), "a plain-text client was answered")
	})
}

// The pods' security defaults on a real kubelet: by default they run as the
// image's memcache user, which the image names but does not number, as UID
// 11211. With --memcached-uid=platform they run as the UID the platform
// assigns, as OpenShift's restricted-v2 does (played here by a mutating
// admission policy), and a kubelet refuses them where none is assigned.
func TestPodsRunAsTheirUser(t *testing.T) {
	g := NewWithT(t)
	fixed := newNamespace(t)
	mc := waitAvailable(t, createMemcached(t, fixed, "fixed", 1, nil), 1)
	g.Expect(processUID(g, t.Context(), mc)).To(Equal("11211"))

	const platformUID = "1000680000"
	policy := `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata:
  name: assign-uid
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["pods"]
    namespaceSelector:
      matchLabels:
        uid-range: "` + platformUID + `"
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >
        Object{spec: Object.spec{securityContext: Object.spec.securityContext{runAsUser: ` + platformUID + `, fsGroup: ` + platformUID + `}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata:
  name: assign-uid
spec:
  policyName: assign-uid
`
	g.Expect(applyManifest(t, policy)).To(Succeed())
	t.Cleanup(func() {
		_, _ = runKubectl("delete", "mutatingadmissionpolicy,mutatingadmissionpolicybinding", "assign-uid")
	})
	setManagerArgs(t, "--memcached-uid=platform")

	assigned := newNamespace(t)
	ns := &corev1.Namespace{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Name: assigned}, ns)).To(Succeed())
	ns.Labels["uid-range"] = platformUID
	g.Expect(k8sClient.Update(t.Context(), ns)).To(Succeed())
	mc = waitAvailable(t, createMemcached(t, assigned, "platform", 1, nil), 1)
	g.Expect(processUID(g, t.Context(), mc)).To(Equal(platformUID))
	answer, err := command(mc.Status.ServerList[0], "version")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(answer).To(HavePrefix("VERSION "))

	unassigned := newNamespace(t)
	mc = createMemcached(t, unassigned, "platform", 1, nil)
	g.Eventually(func(g Gomega) string {
		list := pods(g, t.Context(), mc)
		g.Expect(list).To(HaveLen(1))
		g.Expect(list[0].Status.ContainerStatuses).To(HaveLen(1))
		waiting := list[0].Status.ContainerStatuses[0].State.Waiting
		g.Expect(waiting).NotTo(BeNil())
		return waiting.Message
	}).Should(ContainSubstring("non-numeric user"))
}

// processUID returns the user the memcached process of mc's only pod runs
// as, as the node sees it.
func processUID(g Gomega, ctx context.Context, mc *cachev1alpha1.Memcached) string {
	list := pods(g, ctx, mc)
	g.Expect(list).To(HaveLen(1))
	uid, err := containerProcessUID(string(list[0].UID), "memcached")
	g.Expect(err).NotTo(HaveOccurred())
	return uid
}

// applyManifest applies YAML objects as the cluster administrator.
func applyManifest(t *testing.T, manifest string) error {
	path := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		return err
	}
	if out, err := runKubectl("apply", "--server-side", "-f", path); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// setManagerArgs runs the release's manager with extra arguments until the
// test ends, and waits for it to be available each time.
func setManagerArgs(t *testing.T, args ...string) {
	g := NewWithT(t)
	deployment := &appsv1.Deployment{}
	key := client.ObjectKey{Namespace: operatorNamespace, Name: managerName}
	g.Expect(k8sClient.Get(t.Context(), key, deployment)).To(Succeed())
	original := slices.Clone(deployment.Spec.Template.Spec.Containers[0].Args)
	set := func(args []string) {
		g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			current := &appsv1.Deployment{}
			if err := k8sClient.Get(context.Background(), key, current); err != nil {
				return err
			}
			current.Spec.Template.Spec.Containers[0].Args = args
			return k8sClient.Update(context.Background(), current)
		})).To(Succeed())
		out, err := runKubectl("--namespace", operatorNamespace, "rollout", "status", "--timeout=3m", "deployment/"+managerName)
		g.Expect(err).NotTo(HaveOccurred(), out)
	}
	set(append(slices.Clone(original), args...))
	t.Cleanup(func() { set(original) })
}

// A memcached that stops answering on its port: its readiness probe takes
// the pod out of the server list and the Service, its liveness probe has the
// kubelet restart the container, and once it answers again it is back.
func TestProbesRestartAMemcachedThatStopsAnswering(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := waitAvailable(t, createMemcached(t, ns, "probed", 2, nil), 2)
	pod := pods(g, t.Context(), mc)[0]
	address := net.JoinHostPort(pod.Status.PodIP, "11211")
	g.Expect(mc.Status.ServerList).To(ContainElement(address))

	// Connections to memcached's port are dropped inside the pod's network
	// namespace, which its sandbox (pause) holds, probes included; memcached
	// itself runs on.
	pid, err := containerProcess(string(pod.UID), "pause")
	g.Expect(err).NotTo(HaveOccurred())
	rule := []string{"INPUT", "-p", "tcp", "--dport", "11211", "-j", "DROP"}
	g.Expect(inPodNetwork(pid, "iptables", append([]string{"-A"}, rule...)...)).To(Succeed())
	restored := false
	restore := func() error {
		restored = true
		return inPodNetwork(pid, "iptables", append([]string{"-D"}, rule...)...)
	}
	t.Cleanup(func() {
		if !restored {
			_ = restore()
		}
	})

	g.Eventually(func(g Gomega) []string {
		current := &cachev1alpha1.Memcached{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		return current.Status.ServerList
	}).ShouldNot(ContainElement(address), "the pod stayed in the server list")
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(&pod), &pod)).To(Succeed())
		g.Expect(isReady(&pod)).To(BeFalse())
		g.Expect(pod.Status.ContainerStatuses[0].RestartCount).To(BeNumerically(">=", 1), "the liveness probe did not restart memcached")
	}).Should(Succeed())
	events := &corev1.EventList{}
	g.Expect(k8sClient.List(t.Context(), events, client.InNamespace(ns))).To(Succeed())
	g.Expect(events.Items).To(ContainElement(And(
		HaveField("InvolvedObject.Name", pod.Name), HaveField("Reason", "Unhealthy"),
		HaveField("Message", HavePrefix("Liveness probe failed")))))

	g.Expect(restore()).To(Succeed())
	waitAvailable(t, mc, 2)
	answer, err := command(address, "version")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(answer).To(HavePrefix("VERSION "))
}
