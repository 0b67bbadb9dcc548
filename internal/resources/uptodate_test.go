package resources

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func TestUpToDate(t *testing.T) {
	mc := newMemcached("example-memcached", 3)
	desired := Deployment(mc, SecretHashes{})

	// What the API server returns for the desired Deployment: everything we
	// set, plus defaults, status and fields of other managers.
	applied := func() *appsv1.Deployment {
		d := toDeployment(t, mc)
		d.TypeMeta = metav1.TypeMeta{} // objects read from a cache carry none
		d.ResourceVersion = "42"
		d.Annotations = map[string]string{"deployment.kubernetes.io/revision": "1"}
		d.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
		d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
		d.Spec.Template.Spec.Containers[0].TerminationMessagePath = "/dev/termination-log"
		d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("100m")
		d.Status.Replicas = 3
		return d
	}

	tests := []struct {
		name   string
		mutate func(*appsv1.Deployment)
		want   bool
	}{
		{name: "as applied, with defaults and status", mutate: func(*appsv1.Deployment) {}, want: true},
		{name: "replicas changed", mutate: func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](7) }, want: false},
		{name: "image changed", mutate: func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx" }, want: false},
		{name: "argument removed", mutate: func(d *appsv1.Deployment) {
			c := &d.Spec.Template.Spec.Containers[0]
			c.Args = c.Args[:len(c.Args)-1]
		}, want: false},
		{name: "label changed", mutate: func(d *appsv1.Deployment) { d.Labels[InstanceLabel] = "other" }, want: false},
		{name: "label removed", mutate: func(d *appsv1.Deployment) { delete(d.Labels, ManagedByLabel) }, want: false},
		{name: "extra label of another manager", mutate: func(d *appsv1.Deployment) { d.Labels["team"] = "cache" }, want: true},
		{name: "sidecar added by another manager", mutate: func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "proxy"})
		}, want: false},
		{name: "memory limit changed", mutate: func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory] = resource.MustParse("1Gi")
		}, want: false},
		{name: "owner reference removed", mutate: func(d *appsv1.Deployment) { d.OwnerReferences = nil }, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			actual := applied()
			tt.mutate(actual)
			got, err := UpToDate(desired, actual)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("UpToDate() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUpToDateLeavesUnstructuredDesiredAlone(t *testing.T) {
	desired := ServiceMonitor(withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	}))
	if _, err := UpToDate(desired, desired.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if desired.GetKind() != ServiceMonitorGVK.Kind || desired.GetAPIVersion() != ServiceMonitorGVK.GroupVersion().String() {
		t.Errorf("UpToDate changed the type of the desired object to %q %q", desired.GetAPIVersion(), desired.GetKind())
	}
}
