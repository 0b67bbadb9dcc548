package controller

import (
	"context"
	"time"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// withPriority gives the requests h adds the given priority, when the
// controller's queue is a priority queue.
func withPriority(h handler.EventHandler, priority int) handler.EventHandler {
	return &prioritized{EventHandler: h, priority: priority}
}

type prioritized struct {
	handler.EventHandler
	priority int
}

type requestQueue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func (p *prioritized) Create(ctx context.Context, e event.CreateEvent, q requestQueue) {
	p.EventHandler.Create(ctx, e, p.queue(q))
}

func (p *prioritized) Update(ctx context.Context, e event.UpdateEvent, q requestQueue) {
	p.EventHandler.Update(ctx, e, p.queue(q))
}

func (p *prioritized) Delete(ctx context.Context, e event.DeleteEvent, q requestQueue) {
	p.EventHandler.Delete(ctx, e, p.queue(q))
}

func (p *prioritized) Generic(ctx context.Context, e event.GenericEvent, q requestQueue) {
	p.EventHandler.Generic(ctx, e, p.queue(q))
}

func (p *prioritized) queue(q requestQueue) requestQueue {
	if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		return priorityQueue{PriorityQueue: pq, priority: p.priority}
	}
	return q
}

// priorityQueue adds requests with a priority.
type priorityQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
	priority int
}

func (q priorityQueue) Add(item reconcile.Request) {
	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(q.priority)}, item)
}

func (q priorityQueue) AddRateLimited(item reconcile.Request) {
	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(q.priority), RateLimited: true}, item)
}

func (q priorityQueue) AddAfter(item reconcile.Request, duration time.Duration) {
	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(q.priority), After: duration}, item)
}
