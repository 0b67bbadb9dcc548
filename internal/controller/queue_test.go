package controller

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// toRequest maps any object to a request for a Memcached of its name.
func toRequest(_ context.Context, obj client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}}}
}

func podNamed(name, resourceVersion string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: resourceVersion}}
}

func TestPodEventsGoBeforeTheWorkAlreadyQueued(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("test")
	defer q.ShutDown()
	ctx := t.Context()
	plain := handler.EnqueueRequestsFromMapFunc(toRequest)
	prioritized := withPriority(handler.EnqueueRequestsFromMapFunc(toRequest), podPriority)

	// New Memcacheds queued first, at the default priority; then the events
	// of every kind a pod has, and a resync, which changes nothing and keeps
	// controller-runtime's low priority.
	plain.Create(ctx, event.CreateEvent{Object: podNamed("new-1", "1")}, q)
	plain.Create(ctx, event.CreateEvent{Object: podNamed("new-2", "1")}, q)
	prioritized.Update(ctx, event.UpdateEvent{ObjectOld: podNamed("resynced", "3"), ObjectNew: podNamed("resynced", "3")}, q)
	prioritized.Create(ctx, event.CreateEvent{Object: podNamed("created", "1")}, q)
	prioritized.Update(ctx, event.UpdateEvent{ObjectOld: podNamed("updated", "1"), ObjectNew: podNamed("updated", "2")}, q)
	prioritized.Delete(ctx, event.DeleteEvent{Object: podNamed("deleted", "1")}, q)
	prioritized.Generic(ctx, event.GenericEvent{Object: podNamed("generic", "1")}, q)

	wantPriority := map[string]int{"new-1": 0, "new-2": 0, "resynced": handler.LowPriority}
	order := make([]string, 0, 7)
	for range 7 {
		item, priority, _ := q.GetWithPriority()
		order = append(order, item.Name)
		want, ok := wantPriority[item.Name]
		if !ok {
			want = podPriority
		}
		if priority != want {
			t.Errorf("%s came with priority %d, want %d", item.Name, priority, want)
		}
		q.Done(item)
	}
	want := []string{"created", "updated", "deleted", "generic", "new-1", "new-2", "resynced"}
	if !slices.Equal(order, want) {
		t.Errorf("Reconciled in the order %q, want %q", order, want)
	}
}

func TestPrioritizedEventsReachAQueueWithoutPriorities(t *testing.T) {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	withPriority(handler.EnqueueRequestsFromMapFunc(toRequest), podPriority).
		Create(t.Context(), event.CreateEvent{Object: podNamed("created", "1")}, q)
	if q.Len() != 1 {
		t.Fatalf("The queue holds %d requests, want 1", q.Len())
	}
	if item, _ := q.Get(); item.Name != "created" {
		t.Errorf("The queue holds %v", item)
	}
}
