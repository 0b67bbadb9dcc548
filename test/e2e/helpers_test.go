package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// getMemcached reads mc as the API server has it.
func getMemcached(t *testing.T, g Gomega, mc *cachev1alpha1.Memcached) *cachev1alpha1.Memcached {
	current := &cachev1alpha1.Memcached{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
	return current
}

// patchSpec changes the spec of mc as a user would.
func patchSpec(t *testing.T, mc *cachev1alpha1.Memcached, mutate func(*cachev1alpha1.MemcachedSpec)) {
	t.Helper()
	g := NewWithT(t)
	current := getMemcached(t, g, mc)
	patch := client.MergeFrom(current.DeepCopy())
	mutate(&current.Spec)
	g.Expect(k8sClient.Patch(t.Context(), current, patch)).To(Succeed())
}

// reconciles returns how many reconciles of Memcacheds the running operator
// has completed.
func reconciles(t *testing.T, g Gomega) float64 {
	metrics, err := operator.Metrics(t.Context())
	g.Expect(err).NotTo(HaveOccurred())
	return sum(metrics, "controller_runtime_reconcile_total", map[string]string{"controller": "memcached"})
}

// expectOperatorIdle waits until the running operator has completed at least
// reconciled reconciles of Memcacheds, and has none under way nor ready to
// start.
func expectOperatorIdle(t *testing.T, reconciled float64) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		metrics, err := operator.Metrics(t.Context())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sum(metrics, "controller_runtime_reconcile_total", map[string]string{"controller": "memcached"})).
			To(BeNumerically(">=", reconciled))
		g.Expect(sum(metrics, "workqueue_depth", map[string]string{"name": "memcached"})).To(BeZero())
		g.Expect(sum(metrics, "controller_runtime_active_workers", map[string]string{"controller": "memcached"})).To(BeZero())
	}).Should(Succeed(), "the operator did not reconcile and fall idle")
}

// reconcileNow has the running operator reconcile mc: it touches an
// annotation of mc, which the operator does not read, and waits until the
// operator has completed one more reconcile and is idle.
func reconcileNow(t *testing.T, mc *cachev1alpha1.Memcached) {
	t.Helper()
	g := NewWithT(t)
	before := reconciles(t, g)
	patch := client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"e2e.test/touched":"`+time.Now().Format(time.RFC3339Nano)+`"}}}`))
	g.Expect(k8sClient.Patch(t.Context(), &cachev1alpha1.Memcached{ObjectMeta: mc.ObjectMeta}, patch)).To(Succeed())
	expectOperatorIdle(t, before+1)
}

// podWatch follows the memcached pods of a Memcached as the API server
// reports them, event by event.
type podWatch struct {
	mu sync.Mutex
	// ready holds the pods that are ready and not being deleted.
	ready map[string]bool
	// fewestReady is the fewest ready pods seen since the watch began.
	fewestReady int
	// deleted is when each pod was first seen being deleted.
	deleted map[string]time.Time
	// uids are the UIDs each pod name had.
	uids map[string][]string
}

// watchPods starts following the pods of mc until the test ends. The
// fewest ready pods count from the pods ready when it starts.
func watchPods(t *testing.T, mc *cachev1alpha1.Memcached) *podWatch {
	t.Helper()
	c, err := client.NewWithWatch(cluster.Config, client.Options{Scheme: k8sClient.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pods := &corev1.PodList{}
	opts := []client.ListOption{client.InNamespace(mc.Namespace), client.MatchingLabels(resources.SelectorLabels(mc))}
	if err := k8sClient.List(ctx, pods, opts...); err != nil {
		t.Fatal(err)
	}
	w := &podWatch{ready: map[string]bool{}, deleted: map[string]time.Time{}, uids: map[string][]string{}}
	for i := range pods.Items {
		w.observe(watch.Added, &pods.Items[i])
	}
	w.fewestReady = len(w.ready)
	watcher, err := c.Watch(ctx, &corev1.PodList{}, append(opts, &client.ListOptions{Raw: &metav1.ListOptions{
		ResourceVersion: pods.ResourceVersion}})...)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer watcher.Stop()
		for e := range watcher.ResultChan() {
			if pod, ok := e.Object.(*corev1.Pod); ok {
				w.observe(e.Type, pod)
			}
		}
	}()
	return w
}

func (w *podWatch) observe(t watch.EventType, pod *corev1.Pod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if uids := w.uids[pod.Name]; len(uids) == 0 || uids[len(uids)-1] != string(pod.UID) {
		w.uids[pod.Name] = append(uids, string(pod.UID))
	}
	gone := t == watch.Deleted || pod.DeletionTimestamp != nil
	if _, seen := w.deleted[pod.Name]; gone && !seen {
		w.deleted[pod.Name] = time.Now()
	}
	ready := !gone && isReady(pod)
	if ready {
		w.ready[pod.Name] = true
	} else {
		delete(w.ready, pod.Name)
	}
	if len(w.ready) < w.fewestReady {
		w.fewestReady = len(w.ready)
	}
	if !gone && t != watch.Deleted {
		delete(w.deleted, pod.Name) // a new pod of the same name
	}
}

// fewest returns the fewest ready pods seen.
func (w *podWatch) fewest() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fewestReady
}

// deletedAt returns when the pod was first seen being deleted, if it was.
func (w *podWatch) deletedAt(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.deleted[name]
	return at, ok
}

// podUIDs returns the UIDs a pod name has had, oldest first.
func (w *podWatch) podUIDs(name string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.uids[name]...)
}

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// serverListWatch records every status.serverList of a Memcached the API
// server reports.
type serverListWatch struct {
	mu     sync.Mutex
	lists  [][]string
	writes int
}

// watchServerLists starts recording the server lists of mc until the test
// ends.
func watchServerLists(t *testing.T, mc *cachev1alpha1.Memcached) *serverListWatch {
	t.Helper()
	c, err := client.NewWithWatch(cluster.Config, client.Options{Scheme: k8sClient.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	watcher, err := c.Watch(ctx, &cachev1alpha1.MemcachedList{}, client.InNamespace(mc.Namespace),
		client.MatchingFields{"metadata.name": mc.Name})
	if err != nil {
		t.Fatal(err)
	}
	w := &serverListWatch{}
	go func() {
		defer watcher.Stop()
		for e := range watcher.ResultChan() {
			if current, ok := e.Object.(*cachev1alpha1.Memcached); ok {
				w.mu.Lock()
				w.lists = append(w.lists, current.Status.ServerList)
				w.writes++
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// seen returns the server lists seen, the first one included.
func (w *serverListWatch) seen() [][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]string(nil), w.lists...)
}

// statusWrites returns how many changes of the Memcached were seen after the
// first.
func (w *serverListWatch) statusWrites() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes - 1
}
