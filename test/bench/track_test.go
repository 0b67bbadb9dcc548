package main

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func pod(namespace, name string, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}}
}

func TestPodsReadyCountsReadyPodsByNamePrefix(t *testing.T) {
	a := types.NamespacedName{Namespace: "ns", Name: "mc-0001"}
	b := types.NamespacedName{Namespace: "ns", Name: "mc-0002"}
	p := newPodsReady()
	p.begin(map[types.NamespacedName]int{a: 2, b: 1})

	p.observe(pod("ns", "mc-0001-7d9f-abcde", true))
	p.observe(pod("ns", "mc-0001-7d9f-abcde", true))  // the same pod again
	p.observe(pod("ns", "mc-0001-7d9f-fghij", false)) // not ready
	p.observe(pod("other", "mc-0002-0", true))        // another namespace
	p.observe(pod("ns", "mc-00021-0", true))          // another name that shares the prefix
	if len(p.reached) != 0 {
		t.Fatalf("reached %v before any Memcached had its pods ready", p.reached)
	}
	p.observe(pod("ns", "mc-0002-memcached-0", true))
	if _, ok := p.reached[b]; !ok || len(p.reached) != 1 {
		t.Fatalf("reached %v, want only %v", p.reached, b)
	}
	p.observe(pod("ns", "mc-0001-7d9f-fghij", true))
	reached, err := p.wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(reached) != 2 {
		t.Fatalf("reached %v, want both Memcacheds", reached)
	}
}
