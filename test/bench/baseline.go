package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// BaselineResult is what the cluster alone takes for the same Deployments and
// Services, created directly by the same parallel client.
type BaselineResult struct {
	ConvergeSeconds float64 `json:"convergeSeconds"`
	DeleteSeconds   float64 `json:"deleteSeconds"`
	// GoneAt is when the last object of each kind was gone, in seconds
	// from the first delete.
	GoneAt   map[string]float64 `json:"goneAtSeconds"`
	Requests float64            `json:"requests"`
	// ConvergeCPU and DeleteCPU are the CPU time of every process in those
	// phases.
	ConvergeCPU       cpuTimes  `json:"convergeCPUSeconds"`
	DeleteCPU         cpuTimes  `json:"deleteCPUSeconds"`
	Available         []float64 `json:"availableAtSeconds"`
	RequestsPerSecond []float64 `json:"requestsPerSecond"`
}

func runBaseline(ctx context.Context, cfg config) (*BaselineResult, error) {
	cluster, c, requests, err := startCluster(ctx, cfg, "baseline")
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	w, err := startWatcher(ctx, cluster.Config, watchOptions{Namespaces: namespaces(cfg)})
	if err != nil {
		return nil, err
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	rates := sampleRate(sampleCtx, requests)
	r := &BaselineResult{}

	fmt.Printf("==> Baseline: creating %d Deployments of %d replicas and their Services directly\n", cfg.N, cfg.Size)
	w.deployments.begin(cfg.N, func(obj client.Object) bool {
		d := obj.(*appsv1.Deployment)
		return d.Status.ObservedGeneration == d.Generation && d.Status.ReadyReplicas == int32(cfg.Size)
	})
	requestsBefore := requests.Load()
	pids := cluster.PIDs()
	cpuBefore, err := takeCPU(pids)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := parallel(cfg.N, cfg.Parallel, func(i int) error {
		n, ns := name(cfg, i)
		mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns},
			Spec: cachev1alpha1.MemcachedSpec{Size: int32(cfg.Size)}}
		// The operator's objects, without the owner reference to a Memcached.
		for _, obj := range baselineObjects(mc) {
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("bench")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	reached, err := w.deployments.wait(ctx)
	if err != nil {
		return nil, err
	}
	r.ConvergeSeconds = time.Since(start).Seconds()
	r.Requests = float64(requests.Load() - requestsBefore)
	cpuAfter, err := takeCPU(pids)
	if err != nil {
		return nil, err
	}
	r.ConvergeCPU = cpuAfter.since(cpuBefore)
	for _, at := range reached {
		r.Available = append(r.Available, at.Sub(start).Seconds())
	}
	slices.Sort(r.Available)
	fmt.Printf("    all ready in %.1fs\n", r.ConvergeSeconds)

	fmt.Printf("==> Baseline: deleting every Deployment and Service\n")
	if cpuBefore, err = takeCPU(pids); err != nil {
		return nil, err
	}
	present := w.objectsLeft()
	start = time.Now()
	if err := parallel(cfg.N, cfg.Parallel, func(i int) error {
		n, ns := name(cfg, i)
		mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: ns},
			Spec: cachev1alpha1.MemcachedSpec{Size: int32(cfg.Size)}}
		for _, obj := range baselineObjects(mc) {
			if err := client.IgnoreNotFound(c.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	gone, goneAt, err := w.waitGone(ctx, present, start, phaseTimeout)
	if err != nil {
		return nil, err
	}
	if cpuAfter, err = takeCPU(pids); err != nil {
		return nil, err
	}
	r.DeleteSeconds, r.GoneAt, r.DeleteCPU = gone.Seconds(), goneAt, cpuAfter.since(cpuBefore)
	fmt.Printf("    everything gone in %.1fs\n", r.DeleteSeconds)
	r.RequestsPerSecond = rates()
	return r, nil
}

// baselineObjects returns the objects the operator makes for mc, without the
// owner reference to a Memcached.
func baselineObjects(mc *cachev1alpha1.Memcached) []*unstructured.Unstructured {
	desired := resources.Build(mc, resources.Inputs{Servers: resources.Servers{StatefulSetReplicas: mc.Spec.Size}})
	objects := make([]*unstructured.Unstructured, 0, len(desired.Objects))
	for _, o := range desired.Objects {
		o.SetOwnerReferences(nil)
		objects = append(objects, o.Unstructured)
	}
	return objects
}
