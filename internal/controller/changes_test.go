package controller

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

func TestDeploymentChanges(t *testing.T) {
	mc := func(size, memoryMB int32) *cachev1alpha1.Memcached {
		return &cachev1alpha1.Memcached{
			ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: "ns"},
			Spec:       cachev1alpha1.MemcachedSpec{Size: size, MemoryMB: memoryMB},
		}
	}
	// applied returns the Deployment as it stands after applying the desired one of m.
	applied := func(m *cachev1alpha1.Memcached) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		if err := convertApplied(resources.Deployment(m, resources.SecretHashes{}), d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	drifted := applied(mc(3, 64))
	drifted.Labels[resources.InstanceLabel] = "other"

	tests := []struct {
		name    string
		existed bool
		current *appsv1.Deployment
		mc      *cachev1alpha1.Memcached
		want    []string
	}{
		{name: "created", existed: false, current: &appsv1.Deployment{}, mc: mc(3, 64), want: nil},
		{name: "scaled", existed: true, current: applied(mc(3, 64)), mc: mc(5, 64), want: []string{"Scaled"}},
		{name: "configuration changed", existed: true, current: applied(mc(3, 64)), mc: mc(3, 128), want: []string{"ConfigChanged"}},
		{name: "scaled and reconfigured", existed: true, current: applied(mc(3, 64)), mc: mc(1, 128), want: []string{"Scaled", "ConfigChanged"}},
		{name: "drift put back", existed: true, current: drifted, mc: mc(3, 64), want: []string{"DriftCorrected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reasons []string
			for _, c := range deploymentChanges(tt.mc, tt.existed, tt.current, resources.Deployment(tt.mc, resources.SecretHashes{})) {
				if c.note == "" {
					t.Errorf("%s has no note", c.reason)
				}
				reasons = append(reasons, c.reason)
			}
			if !slices.Equal(reasons, tt.want) {
				t.Errorf("deploymentChanges() = %v, want %v", reasons, tt.want)
			}
		})
	}
}
