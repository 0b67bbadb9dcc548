package main

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// milestones records, from watch events, when each object first met the
// condition of the current phase.
type milestones struct {
	mu      sync.Mutex
	start   time.Time
	done    func(client.Object) bool
	reached map[types.NamespacedName]time.Time
	want    int
	all     chan struct{}
}

// begin starts a phase: from now, objects meeting done are recorded until
// want of them have.
func (m *milestones) begin(want int, done func(client.Object) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.start, m.done, m.want = time.Now(), done, want
	m.reached = map[types.NamespacedName]time.Time{}
	m.all = make(chan struct{})
}

func (m *milestones) observe(obj client.Object) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil || !m.done(obj) {
		return
	}
	key := client.ObjectKeyFromObject(obj)
	if _, ok := m.reached[key]; ok {
		return
	}
	m.reached[key] = time.Now()
	if len(m.reached) == m.want {
		close(m.all)
	}
}

// phaseTimeout bounds how long any phase of the benchmark may take.
const phaseTimeout = 30 * time.Minute

// wait waits until every object has reached the phase's condition and
// returns when each did.
func (m *milestones) wait(ctx context.Context) (map[types.NamespacedName]time.Time, error) {
	m.mu.Lock()
	all := m.all
	m.mu.Unlock()
	select {
	case <-all:
	case <-time.After(phaseTimeout):
		m.mu.Lock()
		defer m.mu.Unlock()
		return nil, fmt.Errorf("only %d of %d reached the condition within %s", len(m.reached), m.want, phaseTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reached, nil
}

// watcher keeps a cache of the Memcacheds and of the objects made for them,
// counts the Memcached status changes and the servers ConfigMap changes it
// sees, and feeds the milestones.
type watcher struct {
	cache       cache.Cache
	memcacheds  milestones
	deployments milestones
	pods        *podsReady
	// counts are how many objects of each kind exist, by kind, kept by
	// the informers' events: cheaper to read ten times a second than a
	// list of thousands of objects.
	counts map[string]*atomic.Int64

	mu               sync.Mutex
	statusChanges    int
	configMapChanges int
}

// watchOptions says what a watcher watches.
type watchOptions struct {
	// Memcacheds watches this operator's Memcacheds; false on a cluster
	// without its CRD or with another operator's.
	Memcacheds bool
	// AnyOwner watches every object in the benchmark's namespaces, whoever
	// made it, instead of only those labelled as this operator's.
	AnyOwner bool
	// Namespaces are the benchmark's namespaces.
	Namespaces []string
}

// startWatcher starts a watcher.
func startWatcher(ctx context.Context, cfg *rest.Config, opts watchOptions) (*watcher, error) {
	byObject := map[client.Object]cache.ByObject{}
	selector := labels.SelectorFromSet(labels.Set{resources.ManagedByLabel: resources.ManagerName})
	if opts.AnyOwner {
		selector = labels.Everything()
	}
	kinds := []client.Object{&appsv1.Deployment{}, &appsv1.ReplicaSet{}, &appsv1.StatefulSet{}, &corev1.Service{},
		&policyv1.PodDisruptionBudget{}, &corev1.Pod{}}
	for _, obj := range kinds {
		byObject[obj] = cache.ByObject{Label: selector}
	}
	if opts.Memcacheds {
		byObject[&corev1.ConfigMap{}] = cache.ByObject{Label: selector}
	}
	namespaces := map[string]cache.Config{}
	for _, ns := range opts.Namespaces {
		namespaces[ns] = cache.Config{}
	}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: byObject, DefaultNamespaces: namespaces,
		DefaultTransform: cache.TransformStripManagedFields()})
	if err != nil {
		return nil, err
	}
	w := &watcher{cache: c, pods: newPodsReady(), counts: map[string]*atomic.Int64{}}
	if opts.Memcacheds {
		if err := w.watchMemcacheds(ctx); err != nil {
			return nil, err
		}
		kinds = append(kinds, &cachev1alpha1.Memcached{})
	}
	for _, obj := range kinds {
		if err := w.count(ctx, obj); err != nil {
			return nil, err
		}
	}
	if err := w.handle(ctx, &appsv1.Deployment{}, func(_, obj client.Object) { w.deployments.observe(obj) }); err != nil {
		return nil, err
	}
	if err := w.handle(ctx, &corev1.Pod{}, func(_, obj client.Object) { w.pods.observe(obj.(*corev1.Pod)) }); err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the watcher's caches did not sync")
	}
	return w, nil
}

// count keeps the number of objects of obj's kind in w.counts.
func (w *watcher) count(ctx context.Context, obj client.Object) error {
	informer, err := w.cache.GetInformer(ctx, obj)
	if err != nil {
		return err
	}
	n := &atomic.Int64{}
	w.counts[reflect.TypeOf(obj).Elem().Name()] = n
	_, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { n.Add(1) },
		DeleteFunc: func(any) { n.Add(-1) },
	})
	return err
}

// handle calls f with the old (nil when added) and new object of every
// change of obj's kind.
func (w *watcher) handle(ctx context.Context, obj client.Object, f func(oldObj, newObj client.Object)) error {
	informer, err := w.cache.GetInformer(ctx, obj)
	if err != nil {
		return err
	}
	_, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { f(nil, obj.(client.Object)) },
		UpdateFunc: func(oldObj, newObj any) { f(oldObj.(client.Object), newObj.(client.Object)) },
	})
	return err
}

func (w *watcher) watchMemcacheds(ctx context.Context) error {
	if err := w.handle(ctx, &cachev1alpha1.Memcached{}, func(oldObj, newObj client.Object) {
		if oldObj != nil && !equality.Semantic.DeepEqual(oldObj.(*cachev1alpha1.Memcached).Status, newObj.(*cachev1alpha1.Memcached).Status) {
			w.mu.Lock()
			w.statusChanges++
			w.mu.Unlock()
		}
		w.memcacheds.observe(newObj)
	}); err != nil {
		return err
	}
	// The operator updates the <name>-servers ConfigMaps with PATCH too:
	// counted apart from status writes.
	return w.handle(ctx, &corev1.ConfigMap{}, func(oldObj, newObj client.Object) {
		if oldObj != nil && !equality.Semantic.DeepEqual(oldObj.(*corev1.ConfigMap).Data, newObj.(*corev1.ConfigMap).Data) {
			w.mu.Lock()
			w.configMapChanges++
			w.mu.Unlock()
		}
	})
}

// beginMemcacheds starts a phase of the Memcached milestones and counts the
// Memcacheds that already meet done.
func (w *watcher) beginMemcacheds(ctx context.Context, want int, done func(client.Object) bool) error {
	w.memcacheds.begin(want, done)
	list := &cachev1alpha1.MemcachedList{}
	if err := w.cache.List(ctx, list); err != nil {
		return err
	}
	for i := range list.Items {
		w.memcacheds.observe(&list.Items[i])
	}
	return nil
}

// changeCounts returns how many Memcached status changes and servers
// ConfigMap changes were seen so far.
func (w *watcher) changeCounts() (status, configMaps int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.statusChanges, w.configMapChanges
}

// objectsLeft returns how many watched objects of each kind exist, by kind.
func (w *watcher) objectsLeft() map[string]int {
	left := make(map[string]int, len(w.counts))
	for kind, n := range w.counts {
		left[kind] = int(n.Load())
	}
	return left
}

// waitGone waits until no watched object is left and returns how long it
// took from start, and when the last object of each kind in present, the
// objects left before the deletion started, was gone.
func (w *watcher) waitGone(ctx context.Context, present map[string]int, start time.Time, timeout time.Duration) (time.Duration, map[string]float64, error) {
	tick := time.NewTicker(100 * time.Millisecond) // reads counters only
	defer tick.Stop()
	deadline := time.After(timeout)
	goneAt := map[string]float64{}
	for {
		left := w.objectsLeft()
		n := 0
		for kind, count := range left {
			n += count
			if _, seen := goneAt[kind]; !seen && count == 0 && present[kind] > 0 {
				goneAt[kind] = time.Since(start).Seconds()
			}
		}
		if n == 0 {
			return time.Since(start), goneAt, nil
		}
		select {
		case <-tick.C:
		case <-deadline:
			return 0, nil, fmt.Errorf("%d objects left after %s: %v", n, timeout, left)
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
}

// podsReady records when each Memcached first had as many ready pods as it
// asks for, whoever made the pods: a pod counts for the Memcached whose name,
// followed by "-", begins the pod's name, as the pods of a Deployment or a
// StatefulSet named after it (or after it and a suffix) are named.
type podsReady struct {
	mu      sync.Mutex
	start   time.Time
	want    map[types.NamespacedName]int
	ready   map[types.NamespacedName]map[string]bool
	reached map[types.NamespacedName]time.Time
	all     chan struct{}
}

func newPodsReady() *podsReady { return &podsReady{all: make(chan struct{})} }

// begin starts counting: want is the number of pods each Memcached asks for.
func (p *podsReady) begin(want map[types.NamespacedName]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start, p.want = time.Now(), want
	p.ready = map[types.NamespacedName]map[string]bool{}
	p.reached = map[types.NamespacedName]time.Time{}
	p.all = make(chan struct{})
}

func (p *podsReady) observe(pod *corev1.Pod) {
	if !isReady(pod) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range len(pod.Name) {
		if pod.Name[i] != '-' {
			continue
		}
		key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name[:i]}
		want, ok := p.want[key]
		if !ok {
			continue
		}
		if _, done := p.reached[key]; done {
			return
		}
		if p.ready[key] == nil {
			p.ready[key] = map[string]bool{}
		}
		p.ready[key][pod.Name] = true
		if len(p.ready[key]) >= want {
			p.reached[key] = time.Now()
			if len(p.reached) == len(p.want) {
				close(p.all)
			}
		}
		return
	}
}

// wait waits until every Memcached had its pods ready and returns when each
// did.
func (p *podsReady) wait(ctx context.Context) (map[types.NamespacedName]time.Time, error) {
	p.mu.Lock()
	all := p.all
	p.mu.Unlock()
	select {
	case <-all:
	case <-time.After(phaseTimeout):
		p.mu.Lock()
		defer p.mu.Unlock()
		return nil, fmt.Errorf("only %d of %d Memcacheds had their pods ready within %s", len(p.reached), len(p.want), phaseTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.reached), nil
}

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
