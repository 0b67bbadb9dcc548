package chaos

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/test/internal/faultproxy"
	"example.com/memcached-operator/test/internal/localrun"
)

// TestWorkSurvivesTheOperatorKilledEveryTenSeconds SIGKILLs the operator
// every 10 s, and starts it again at once, as a crash-looping pod would be,
// while Memcacheds are created, scaled, changed and deleted.
func TestWorkSurvivesTheOperatorKilledEveryTenSeconds(t *testing.T) {
	f := newFixture(t)
	ctx, stop := context.WithCancel(t.Context())
	var kills atomic.Int32
	operators := make(chan *localrun.Operator, 1)
	go func() {
		op := f.startOperator()
		defer func() { operators <- op }()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
			op.Kill()
			kills.Add(1)
			op = f.startOperator()
		}
	}()

	g := NewWithT(t)
	n := *size
	f.create(0, n, 2)
	g.Expect(f.churn(ctx, 0, n)).To(Succeed())
	f.create(n, n+n/4, 1)
	// At least three kills land on the work.
	g.Eventually(kills.Load, time.Minute).Should(BeNumerically(">=", 3))
	stop()
	op := <-operators
	last := time.Now()
	recovered := f.settle(last)
	spent := requests(t, op)
	f.expectCalm(op)
	record(t, Figure{Fault: "operator SIGKILLed every 10 s during churn", Memcacheds: n + n/4, Injected: int(kills.Load()),
		RecoverP50: recovered.Seconds(), RecoverP99: recovered.Seconds(), Requests: spent,
		Note: "recovery counted from the last restart; requests are those of the last operator process"})
}

// TestLeaderFailover runs two replicas with leader election: the standby
// takes over within 15 s when the leader is killed, and within 5 s when it
// stops gracefully and hands the Lease back.
func TestLeaderFailover(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	args := []string{"--leader-elect", "--leader-election-namespace=memcached-operator-system"}
	a, b := f.startOperator(args...), f.startOperator(args...)
	leader := func() *localrun.Operator {
		for _, op := range []*localrun.Operator{a, b} {
			if op.Exited() == nil && isLeader(op) {
				return op
			}
		}
		return nil
	}
	g.Eventually(leader).ShouldNot(BeNil())
	f.create(0, *size, 2)
	f.settle(time.Now())

	takeovers := make([]time.Duration, 0, 2)
	for _, graceful := range []bool{false, true} {
		old := leader()
		standby := a
		if old == a {
			standby = b
		}
		stopped := time.Now()
		if graceful {
			g.Expect(old.Stop()).To(Succeed())
		} else {
			old.Kill()
		}
		g.Eventually(func() bool { return isLeader(standby) }, 30*time.Second, 100*time.Millisecond).Should(BeTrue())
		takeover := time.Since(stopped)
		takeovers = append(takeovers, takeover)
		limit := 15 * time.Second
		if graceful {
			limit = 5 * time.Second
		}
		g.Expect(takeover).To(BeNumerically("<=", limit), "graceful %v: the standby took over after %s", graceful, takeover)

		// The new leader does the work.
		next := *size + len(takeovers)
		f.create(next, next+1, 1)
		f.settle(time.Now())
		if old == a {
			a = f.startOperator(args...)
		} else {
			b = f.startOperator(args...)
		}
	}
	f.expectNoUnexpectedErrors()
	record(t, Figure{Fault: "leader killed (SIGKILL)", Memcacheds: *size, Injected: 1,
		RecoverP50: takeovers[0].Seconds(), RecoverP99: takeovers[0].Seconds(), Note: "time until the standby leads"})
	record(t, Figure{Fault: "leader stopped (SIGTERM)", Memcacheds: *size, Injected: 1,
		RecoverP50: takeovers[1].Seconds(), RecoverP99: takeovers[1].Seconds(), Note: "the Lease is handed back on stop"})
}

func isLeader(op *localrun.Operator) bool {
	metrics, err := op.Metrics(context.Background())
	if err != nil {
		return false
	}
	for _, m := range metrics["leader_election_master_status"].GetMetric() {
		if m.GetGauge().GetValue() == 1 && slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
			return l.GetName() == "name"
		}) {
			return true
		}
	}
	return false
}

// restartedWithTheOutage are the components that lose their leader
// election Lease during an outage of kube-apiserver or etcd, and restart.
var restartedWithTheOutage = []string{"kube-controller-manager", "kube-scheduler"}

// TestTheOperatorRidesOutControlPlaneOutages stops kube-apiserver, then etcd,
// for 30 s each while Memcacheds are being created and changed: the operator
// rides it out without exiting, and no pod is replaced for nothing.
func TestTheOperatorRidesOutControlPlaneOutages(t *testing.T) {
	for _, component := range []string{"kube-apiserver", "etcd"} {
		t.Run(component, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t)
			n := *size
			op := f.startSettled(n)

			// Work in flight: new Memcacheds, and changes of others.
			f.create(n, n+n/2, 2)
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			churned := make(chan error, 1)
			go func() { churned <- f.churn(ctx, 0, n/2) }()
			g.Expect(f.cluster.StopComponent(component)).To(Succeed())
			stopped := time.Now()
			// In a cluster, kube-controller-manager and kube-scheduler elect
			// leaders: 10 s into the outage they lose their Leases and exit,
			// and are restarted. The simulated cluster runs them without
			// leader election, so the test does the same by hand.
			g.Expect(hold(ctx, 10*time.Second)).To(Succeed())
			for _, c := range restartedWithTheOutage {
				g.Expect(f.cluster.StopComponent(c)).To(Succeed())
			}
			g.Expect(hold(ctx, time.Until(stopped.Add(30*time.Second)))).To(Succeed()) // the rest of the outage
			g.Expect(f.cluster.StartComponent(t.Context(), component)).To(Succeed())
			for _, c := range restartedWithTheOutage {
				g.Expect(f.cluster.StartComponent(t.Context(), c)).To(Succeed())
			}
			g.Expect(<-churned).To(Succeed())
			before := requests(t, op)
			recovered := f.settle(stopped.Add(30 * time.Second))
			g.Expect(op.Exited()).To(Succeed(), "the operator exited")
			// A kube-apiserver that has just started serves requests before
			// its RBAC authorizer has read the roles, and refuses them.
			f.expectCalm(op, "is forbidden")
			record(t, Figure{Fault: component + " stopped for 30 s during work", Memcacheds: n + n/2, Injected: 1,
				RecoverP50: recovered.Seconds(), RecoverP99: recovered.Seconds(), Requests: requests(t, op) - before,
				Note: "recovery counted from the restart"})
		})
	}
}

// TestExpiredWatchesMissNoChange compacts the operator's watches away every
// 2 s for 20 s of churn: each watch under way ends, and the next watch of
// each resource fails with 410 Gone, as when etcd compacts the
// resourceVersion a client watches from. The informers list again, and
// nothing is missed.
func TestExpiredWatchesMissNoChange(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	proxy, err := faultproxy.Start(f.cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = proxy.Close() })
	f.throughProxy(proxy)
	op := f.startOperator()
	n := *size
	f.create(0, n, 2)

	ctx, stop := context.WithCancel(t.Context())
	compactions := make(chan int)
	start := time.Now()
	go func() {
		n := 0
		defer func() { compactions <- n }()
		for {
			proxy.Compact()
			n++
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	g.Expect(f.churn(ctx, 0, n)).To(Succeed())
	f.create(n, n+n/4, 1)
	g.Expect(hold(ctx, time.Until(start.Add(20*time.Second)))).To(Succeed()) // the fault lasts 20 s, however long the churn took
	stop()
	injected := <-compactions
	g.Expect(proxy.Expired()).To(BeNumerically(">=", injected), "watches did not expire")
	stopped := time.Now()
	before := requests(t, op)
	recovered := f.settle(stopped)
	f.expectCalm(op)
	record(t, Figure{Fault: "watches compacted away every 2 s for 20 s of churn", Memcacheds: n + n/4, Injected: injected,
		RecoverP50: recovered.Seconds(), RecoverP99: recovered.Seconds(), Requests: requests(t, op) - before,
		Note: fmt.Sprintf("%d watches ended with 410 Gone; recovery counted from the last compaction", proxy.Expired())})
}

// TestStrippedOwnerReferencesAreRestoredWithoutDuplicates removes every owner
// reference from the operator's objects, as a restore of a backup does: each
// is adopted again, and none is duplicated.
func TestStrippedOwnerReferencesAreRestoredWithoutDuplicates(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	n := *size
	op := f.startSettled(n)

	// The operator adopts objects again while others are being stripped:
	// its requests count from the first.
	before := requests(t, op)
	stripped := 0
	for _, kind := range resources.Kinds {
		if kind.Optional {
			continue
		}
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(kind.GroupVersion().WithKind(kind.Kind + "List"))
		g.Expect(f.c.List(t.Context(), list, client.MatchingLabels{resources.ManagedByLabel: resources.ManagerName})).To(Succeed())
		for i := range list.Items {
			obj := &list.Items[i]
			patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"ownerReferences":null}}`))
			g.Expect(f.c.Patch(t.Context(), obj, patch)).To(Succeed())
			stripped++
		}
	}
	recovered := f.settle(time.Now())
	f.expectCalm(op)
	record(t, Figure{Fault: "every owner reference stripped", Memcacheds: n, Injected: stripped,
		RecoverP50: recovered.Seconds(), RecoverP99: recovered.Seconds(), Requests: requests(t, op) - before,
		Note: "recovery counted from the last object stripped; requests from the first"})
}

// TestDeletedOrEditedOwnedObjectsAreRestored deletes or edits by hand one
// object of each Memcached, of every kind in turn, and measures how long each
// takes to be restored.
func TestDeletedOrEditedOwnedObjectsAreRestored(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	n := *size
	op := f.startSettled(n)

	type fault struct {
		obj      client.Object
		done     func(context.Context, client.Object) bool
		injected time.Time
	}
	restored := func(original types.UID) func(context.Context, client.Object) bool {
		return func(ctx context.Context, obj client.Object) bool {
			err := f.c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			return err == nil && obj.GetUID() != original && len(obj.GetOwnerReferences()) == 1
		}
	}
	var faults []fault
	before := requests(t, op)
	for i := range n {
		k := key(i)
		switch i % 4 {
		case 0: // the Deployment deleted
			d := &appsv1.Deployment{}
			g.Expect(f.c.Get(t.Context(), k, d)).To(Succeed())
			g.Expect(f.c.Delete(t.Context(), d)).To(Succeed())
			faults = append(faults, fault{&appsv1.Deployment{ObjectMeta: d.ObjectMeta}, restored(d.UID), time.Now()})
		case 1: // the headless Service deleted
			s := &corev1.Service{}
			g.Expect(f.c.Get(t.Context(), client.ObjectKey{Namespace: k.Namespace, Name: k.Name + "-headless"}, s)).To(Succeed())
			g.Expect(f.c.Delete(t.Context(), s)).To(Succeed())
			faults = append(faults, fault{&corev1.Service{ObjectMeta: s.ObjectMeta}, restored(s.UID), time.Now()})
		case 2: // the Service's selector edited
			s := &corev1.Service{}
			g.Expect(f.c.Get(t.Context(), k, s)).To(Succeed())
			patch := client.MergeFrom(s.DeepCopy())
			s.Spec.Selector = map[string]string{"app": "elsewhere"}
			g.Expect(f.c.Patch(t.Context(), s, patch, client.FieldOwner("kubectl-edit"))).To(Succeed())
			faults = append(faults, fault{s, func(ctx context.Context, obj client.Object) bool {
				current := &corev1.Service{}
				return f.c.Get(ctx, client.ObjectKeyFromObject(obj), current) == nil &&
					current.Spec.Selector[resources.InstanceLabel] == k.Name
			}, time.Now()})
		default: // the Deployment scaled by hand
			d := &appsv1.Deployment{}
			g.Expect(f.c.Get(t.Context(), k, d)).To(Succeed())
			patch := client.MergeFrom(d.DeepCopy())
			d.Spec.Replicas = new(int32(7))
			g.Expect(f.c.Patch(t.Context(), d, patch, client.FieldOwner("kubectl-scale"))).To(Succeed())
			faults = append(faults, fault{d, func(ctx context.Context, obj client.Object) bool {
				current := &appsv1.Deployment{}
				return f.c.Get(ctx, client.ObjectKeyFromObject(obj), current) == nil && *current.Spec.Replicas == 2
			}, time.Now()})
		}
	}
	times := make([]time.Duration, 0, len(faults))
	for _, ft := range faults {
		g.Eventually(func() bool { return ft.done(t.Context(), ft.obj) }, time.Minute, 50*time.Millisecond).Should(BeTrue(),
			"%T %s was not restored", ft.obj, ft.obj.GetName())
		times = append(times, time.Since(ft.injected))
	}
	f.settle(time.Now())
	f.expectCalm(op)
	record(t, Figure{Fault: "an owned object deleted or edited, per Memcached", Memcacheds: n, Injected: len(faults),
		RecoverP50: percentile(times, 0.5), RecoverP99: percentile(times, 0.99), Requests: requests(t, op) - before,
		Note: "time until each object was back, measured by polling every 50 ms"})
}

// TestTheLastSpecWinsOverAConcurrentWriter has a user change each Memcached's
// spec while another edits its Deployment, at the same moment, three times:
// the last spec wins, nothing loops.
func TestTheLastSpecWinsOverAConcurrentWriter(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	n := *size
	op := f.startSettled(n)

	before := requests(t, op)
	var last time.Time
	for round := range 3 {
		threads := int32(5 + round)
		g.Expect(parallel(2*n, func(i int) error {
			k := key(i / 2)
			if i%2 == 0 {
				mc := &cachev1alpha1.Memcached{}
				if err := f.c.Get(t.Context(), k, mc); err != nil {
					return err
				}
				patch := client.MergeFrom(mc.DeepCopy())
				mc.Spec.Threads = threads
				mc.Spec.Size = 3
				f.mu.Lock()
				f.templateChanges[k]++
				f.mu.Unlock()
				return f.c.Patch(t.Context(), mc, patch)
			}
			d := &appsv1.Deployment{}
			if err := f.c.Get(t.Context(), k, d); err != nil {
				return err
			}
			patch := client.MergeFrom(d.DeepCopy())
			d.Spec.Replicas = new(int32(9))
			d.Spec.Template.Spec.Containers[0].Image = "memcached:edited"
			err := f.c.Patch(t.Context(), d, patch, client.FieldOwner("other-writer"))
			if apierrors.IsConflict(err) {
				return nil
			}
			if err == nil {
				// A new pod template, until the operator puts it back.
				f.mu.Lock()
				f.templateChanges[k] += 2
				f.mu.Unlock()
			}
			return err
		})).To(Succeed())
		last = time.Now()
	}
	recovered := f.settle(last)
	for i := range n {
		d := &appsv1.Deployment{}
		g.Expect(f.c.Get(t.Context(), key(i), d)).To(Succeed())
		g.Expect(*d.Spec.Replicas).To(Equal(int32(3)))
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(resources.DefaultImage))
		g.Expect(d.Spec.Template.Spec.Containers[0].Args).To(ContainElements("-t", "7"), "the last spec was lost")
	}
	f.expectCalm(op)
	record(t, Figure{Fault: "spec and Deployment edited at the same moment, 3 rounds", Memcacheds: n, Injected: 3 * 2 * n,
		RecoverP50: recovered.Seconds(), RecoverP99: recovered.Seconds(), Requests: requests(t, op) - before})
}
