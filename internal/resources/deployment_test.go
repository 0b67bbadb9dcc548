package resources

import (
	"encoding/json"
	"maps"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func newMemcached(name string, size int32) *cachev1alpha1.Memcached {
	return &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "cache", UID: types.UID(name + "-uid")},
		Spec:       cachev1alpha1.MemcachedSpec{Size: size},
	}
}

// toDeployment turns an apply configuration into the object it describes.
func toDeployment(t *testing.T, mc *cachev1alpha1.Memcached) *appsv1.Deployment {
	t.Helper()
	data, err := json.Marshal(Deployment(mc, SecretHashes{}))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func TestDeployment(t *testing.T) {
	for _, size := range []int32{0, 1, 3} {
		mc := newMemcached("example-memcached", size)
		d := toDeployment(t, mc)

		if d.Name != mc.Name || d.Namespace != mc.Namespace {
			t.Errorf("size %d: Deployment is %s/%s, want %s/%s", size, d.Namespace, d.Name, mc.Namespace, mc.Name)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != size {
			t.Errorf("size %d: replicas = %v, want %d", size, d.Spec.Replicas, size)
		}
		wantLabels := map[string]string{
			"app.kubernetes.io/name":       "memcached",
			"app.kubernetes.io/instance":   "example-memcached",
			"app.kubernetes.io/managed-by": "memcached-operator",
		}
		if !maps.Equal(d.Labels, wantLabels) || !maps.Equal(d.Spec.Template.Labels, wantLabels) {
			t.Errorf("size %d: labels %v, pod labels %v, want %v", size, d.Labels, d.Spec.Template.Labels, wantLabels)
		}
		if len(d.OwnerReferences) != 1 {
			t.Fatalf("size %d: owner references %v, want one", size, d.OwnerReferences)
		}
		owner := d.OwnerReferences[0]
		if owner.Kind != "Memcached" || owner.APIVersion != "cache.example.com/v1alpha1" || owner.Name != mc.Name ||
			owner.UID != mc.UID || owner.Controller == nil || !*owner.Controller {
			t.Errorf("size %d: owner reference %+v does not make the Memcached its controller", size, owner)
		}
	}
}

func TestDeploymentSelector(t *testing.T) {
	a := toDeployment(t, newMemcached("a", 1))
	b := toDeployment(t, newMemcached("b", 1))

	for _, d := range []*appsv1.Deployment{a, b} {
		selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if !selector.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: selector %s does not match its own pods %v", d.Name, selector, d.Spec.Template.Labels)
		}
		if _, ok := d.Spec.Selector.MatchLabels[ManagedByLabel]; ok {
			t.Errorf("%s: selector %v holds a label that is not part of the pods' identity", d.Name, d.Spec.Selector.MatchLabels)
		}
	}
	selectorA, _ := metav1.LabelSelectorAsSelector(a.Spec.Selector)
	if selectorA.Matches(labels.Set(b.Spec.Template.Labels)) {
		t.Errorf("selector of a %s matches the pods of b %v", selectorA, b.Spec.Template.Labels)
	}
}

func TestDeploymentPodSpec(t *testing.T) {
	pod := toDeployment(t, newMemcached("example-memcached", 3)).Spec.Template.Spec

	if len(pod.Containers) != 1 {
		t.Fatalf("containers = %d, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != DefaultImage {
		t.Errorf("image = %q, want %q", c.Image, DefaultImage)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 11211 || c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports = %+v, want TCP 11211", c.Ports)
	}

	// The restricted Pod Security Standard.
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod may run as root")
	}
	if pod.SecurityContext == nil || pod.SecurityContext.SeccompProfile == nil ||
		pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod has no RuntimeDefault seccomp profile")
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container allows privilege escalation")
	}
	if sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Error("container does not drop ALL capabilities")
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("container root filesystem is writable")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod mounts a service account token")
	}
}
