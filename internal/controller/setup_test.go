package controller

import (
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/status"
)

func newMemcachedForStatus() *cachev1alpha1.Memcached {
	return &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: "ns", Generation: 1},
		Spec:       cachev1alpha1.MemcachedSpec{Size: 1},
	}
}

func TestTrimPodKeepsWhatStatusReads(t *testing.T) {
	deleted := metav1.Now()
	full := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "cache-a", Namespace: "ns", UID: types.UID("uid"), ResourceVersion: "7",
			Labels: map[string]string{"app.kubernetes.io/instance": "cache"}, DeletionTimestamp: &deleted,
			Annotations:     map[string]string{"big": "annotation"},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
			OwnerReferences: []metav1.OwnerReference{{Name: "cache-5d64ff5968"}},
		},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "memcached", Image: "memcached"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0.1", HostIP: "10.1.0.1",
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: deleted},
			},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "memcached", Ready: true}},
		},
	}
	out, err := trimPod(full)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := out.(*corev1.Pod)

	if trimmed.Name != full.Name || trimmed.Namespace != full.Namespace || trimmed.UID != full.UID ||
		trimmed.ResourceVersion != full.ResourceVersion || !equality.Semantic.DeepEqual(trimmed.Labels, full.Labels) ||
		!trimmed.DeletionTimestamp.Equal(full.DeletionTimestamp) {
		t.Errorf("identity, labels or deletion lost: %+v", trimmed.ObjectMeta)
	}
	if trimmed.Status.PodIP != "10.0.0.1" || trimmed.Status.Phase != corev1.PodRunning || !isReady(trimmed) {
		t.Errorf("IP, phase or readiness lost: %+v", trimmed.Status)
	}
	if trimmed.Annotations != nil || trimmed.ManagedFields != nil || trimmed.OwnerReferences != nil ||
		len(trimmed.Spec.Containers) != 0 || trimmed.Status.HostIP != "" || len(trimmed.Status.Conditions) != 1 ||
		trimmed.Status.ContainerStatuses != nil {
		t.Errorf("trimmed pod still holds fields nothing reads: %+v", trimmed)
	}

	// The status computed from trimmed pods is the one computed from full pods.
	live := full.DeepCopy()
	live.DeletionTimestamp = nil
	trimmedLive, _ := trimPod(live)
	mc := newMemcachedForStatus()
	if got, want := status.Compute(mc, status.Observed{Pods: []corev1.Pod{*trimmedLive.(*corev1.Pod)}}, deleted),
		status.Compute(mc, status.Observed{Pods: []corev1.Pod{*live}}, deleted); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("status from trimmed pods %+v differs from %+v", got, want)
	}

	// Anything else, such as a deletion tombstone, passes unchanged.
	if out, _ := trimPod("tombstone"); out != "tombstone" {
		t.Errorf("trimPod changed a non-pod: %v", out)
	}
}

func TestReadinessWaitsForCacheSync(t *testing.T) {
	g := NewWithT(t)
	c, err := cache.New(testConfig, cache.Options{Scheme: k8sClient.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = c.GetInformer(t.Context(), &cachev1alpha1.Memcached{})
	g.Expect(err).NotTo(HaveOccurred())
	check := CacheSynced(c)
	probe := func() error {
		return check(httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/readyz", nil))
	}

	g.Expect(probe()).To(MatchError(ContainSubstring("have not synced")), "ready before the cache started")
	go func() { _ = c.Start(t.Context()) }()
	g.Eventually(probe).Should(Succeed())
}
