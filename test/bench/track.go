package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
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

// watcher keeps a cache of the Memcacheds and of every object labelled as
// managed by the operator, counts the Memcached status changes it sees, and
// feeds the milestones.
type watcher struct {
	cache         cache.Cache
	memcacheds    milestones
	deployments   milestones
	mu            sync.Mutex
	statusChanges int
}

// startWatcher starts the watcher; withMemcacheds is false on a cluster
// without the Memcached CRD.
func startWatcher(ctx context.Context, cfg *rest.Config, withMemcacheds bool) (*watcher, error) {
	managed := labels.SelectorFromSet(labels.Set{resources.ManagedByLabel: resources.ManagerName})
	byObject := map[client.Object]cache.ByObject{}
	for _, obj := range managedKinds() {
		byObject[obj] = cache.ByObject{Label: managed}
	}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: byObject, DefaultTransform: cache.TransformStripManagedFields()})
	if err != nil {
		return nil, err
	}
	w := &watcher{cache: c}
	if withMemcacheds {
		if err := w.watchMemcacheds(ctx); err != nil {
			return nil, err
		}
	}
	deployInformer, err := c.GetInformer(ctx, &appsv1.Deployment{})
	if err != nil {
		return nil, err
	}
	if _, err := deployInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.deployments.observe(obj.(client.Object)) },
		UpdateFunc: func(_, newObj any) { w.deployments.observe(newObj.(client.Object)) },
	}); err != nil {
		return nil, err
	}
	for _, obj := range managedKinds() {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return nil, err
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the watcher's caches did not sync")
	}
	return w, nil
}

func (w *watcher) watchMemcacheds(ctx context.Context) error {
	informer, err := w.cache.GetInformer(ctx, &cachev1alpha1.Memcached{})
	if err != nil {
		return err
	}
	_, err = informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { w.memcacheds.observe(obj.(client.Object)) },
		UpdateFunc: func(oldObj, newObj any) {
			if !equality.Semantic.DeepEqual(oldObj.(*cachev1alpha1.Memcached).Status, newObj.(*cachev1alpha1.Memcached).Status) {
				w.mu.Lock()
				w.statusChanges++
				w.mu.Unlock()
			}
			w.memcacheds.observe(newObj.(client.Object))
		},
	})
	return err
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

func (w *watcher) statusChangeCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.statusChanges
}

func managedKinds() []client.Object {
	return []client.Object{&appsv1.Deployment{}, &appsv1.ReplicaSet{}, &corev1.Service{}, &corev1.Pod{}}
}

// managedObjects counts the Deployments, ReplicaSets, Services and Pods
// labelled as managed by the operator.
func (w *watcher) managedObjects(ctx context.Context) (int, error) {
	n := 0
	for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.ReplicaSetList{}, &corev1.ServiceList{}, &corev1.PodList{}} {
		if err := w.cache.List(ctx, list); err != nil {
			return 0, err
		}
		n += meta.LenList(list)
	}
	return n, nil
}

// waitGone waits until no managed object is left and returns how long it took
// from start.
func (w *watcher) waitGone(ctx context.Context, start time.Time, timeout time.Duration) (time.Duration, error) {
	tick := time.NewTicker(100 * time.Millisecond) // reads the local cache only
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		n, err := w.managedObjects(ctx)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return time.Since(start), nil
		}
		select {
		case <-tick.C:
		case <-deadline:
			return 0, fmt.Errorf("%d managed objects left after %s", n, timeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
