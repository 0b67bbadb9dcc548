package controller

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
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
			Annotations:   map[string]string{"big": "annotation", resources.TemplateHashAnnotation: "t1"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "cache-5d64ff5968", Controller: ptr.To(true)},
				{Kind: "Other", Name: "not-the-controller"}},
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
	if trimmed.Status.PodIP != "10.0.0.1" || trimmed.Status.Phase != corev1.PodRunning || !status.IsReady(trimmed) {
		t.Errorf("IP, phase or readiness lost: %+v", trimmed.Status)
	}
	if len(trimmed.Annotations) != 1 || trimmed.Annotations[resources.TemplateHashAnnotation] != "t1" ||
		len(trimmed.OwnerReferences) != 1 || trimmed.OwnerReferences[0].Kind != "ReplicaSet" {
		t.Errorf("template digest or controller lost: %+v", trimmed.ObjectMeta)
	}
	if trimmed.ManagedFields != nil || len(trimmed.Spec.Containers) != 0 || trimmed.Status.HostIP != "" ||
		len(trimmed.Status.Conditions) != 2 || trimmed.Status.ContainerStatuses != nil {
		t.Errorf("trimmed pod still holds fields nothing reads: %+v", trimmed)
	}

	// The status computed from trimmed pods is the one computed from full pods.
	live := full.DeepCopy()
	live.DeletionTimestamp = nil
	trimmedLive, _ := trimPod(live)
	mc := newMemcachedForStatus()
	compute := func(pod corev1.Pod) cachev1alpha1.MemcachedStatus {
		observed := status.Observed{Pods: []corev1.Pod{pod}}
		return status.Compute(mc, observed, status.Outcome{}, status.PlanServers(mc, observed, deleted), deleted)
	}
	if got, want := compute(*trimmedLive.(*corev1.Pod)), compute(*live); !equality.Semantic.DeepEqual(got, want) {
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

func TestTrimPodKeepsWhyItCannotRun(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "cache-a"},
		Status: corev1.PodStatus{
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				Reason: corev1.PodReasonUnschedulable, Message: strings.Repeat("no node fits; ", 100)}},
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: "memcached", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}},
				{Name: "running", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		},
	}
	out, _ := trimPod(pod)
	trimmed := out.(*corev1.Pod)
	fullReason, _ := status.PodProblem(pod)
	trimmedReason, message := status.PodProblem(trimmed)
	if trimmedReason != fullReason || trimmedReason == "" || len(message) > 2*maxMessage {
		t.Errorf("trimmed pod tells %q %q, the full one %q", trimmedReason, message, fullReason)
	}
	if len(trimmed.Status.ContainerStatuses) != 1 {
		t.Errorf("kept container statuses %+v, want the waiting one only", trimmed.Status.ContainerStatuses)
	}
}

func TestTrimKeepsOnlyTheOperatorsFields(t *testing.T) {
	ours := metav1.ManagedFieldsEntry{Manager: resources.ManagerName, Operation: metav1.ManagedFieldsOperationApply,
		FieldsV1: metav1.NewFieldsV1(`{"f:spec":{}}`)}
	objectMeta := metav1.ObjectMeta{
		Name: "cache", Namespace: "ns", UID: "uid", ResourceVersion: "9", Generation: 4,
		Labels:          map[string]string{resources.ManagedByLabel: resources.ManagerName},
		Annotations:     map[string]string{resources.AppliedHashAnnotation: "a", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
		OwnerReferences: []metav1.OwnerReference{{Kind: "Memcached", Name: "cache", Controller: ptr.To(true)}},
		ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate},
			ours,
			{Manager: resources.ManagerName, Operation: metav1.ManagedFieldsOperationApply, Subresource: "status"},
		},
	}
	out, _ := trimMetadata(&metav1.PartialObjectMetadata{ObjectMeta: objectMeta})
	trimmed := out.(*metav1.PartialObjectMetadata)
	if len(trimmed.ManagedFields) != 1 || trimmed.ManagedFields[0].FieldsV1.GetRawString() != ours.FieldsV1.GetRawString() ||
		string(appliedFields(trimmed)) != `{"f:spec":{}}` {
		t.Errorf("managed fields %+v, want the operator's apply only", trimmed.ManagedFields)
	}
	if len(trimmed.Annotations) != 1 || trimmed.Annotations[resources.AppliedHashAnnotation] != "a" ||
		trimmed.Generation != 4 || len(trimmed.OwnerReferences) != 1 || len(trimmed.Labels) != 1 {
		t.Errorf("trimmed metadata %+v, want the applied digest, generation, owners and labels", trimmed.ObjectMeta)
	}

	replicas := int32(3)
	out, _ = trimWorkload(&appsv1.Deployment{ObjectMeta: objectMeta, Spec: appsv1.DeploymentSpec{Replicas: &replicas,
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "memcached"}}}}},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 2}})
	d := out.(*appsv1.Deployment)
	if ptr.Deref(d.Spec.Replicas, 0) != 3 || d.Status.ReadyReplicas != 2 || len(d.Spec.Template.Spec.Containers) != 0 ||
		len(d.ManagedFields) != 1 {
		t.Errorf("trimmed Deployment %+v, want replicas, status and the operator's fields only", d)
	}
}

func TestCacheHoldsOnlyTheOperatorsObjects(t *testing.T) {
	every := APIs{}
	for _, kind := range resources.Kinds {
		every[kind.GroupVersionKind] = kind.Optional
	}
	withMonitor := CacheOptions(every)
	without := CacheOptions(APIs{})
	kinds := func(opts cache.Options) map[string]bool {
		out := map[string]bool{}
		for obj, byObject := range opts.ByObject {
			gvk, err := apiutil.GVKForObject(obj, scheme)
			if err != nil {
				t.Fatal(err)
			}
			filtered := byObject.Label != nil && byObject.Label.String() == resources.ManagedByLabel+"="+resources.ManagerName
			out[gvk.Kind] = filtered
		}
		return out
	}
	got := kinds(withMonitor)
	for _, kind := range resources.Kinds {
		if !got[kind.Kind] {
			t.Errorf("%s is not cached, or cached without the managed-by filter: %v", kind.Kind, got)
		}
	}
	if !got["Pod"] {
		t.Errorf("Pods are cached without the managed-by filter")
	}
	if _, ok := kinds(without)[resources.ServiceMonitorKind.Kind]; ok {
		t.Error("ServiceMonitors are cached though the cluster has no such API: the cache would not start")
	}
}

func TestRoleCannotWriteSecrets(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		t.Fatal(err)
	}
	for _, rule := range role.Rules {
		if !slices.Contains(rule.Resources, "secrets") {
			continue
		}
		for _, verb := range rule.Verbs {
			if !slices.Contains([]string{"get", "list", "watch"}, verb) {
				t.Errorf("the operator may %s Secrets: it only reads the ones Memcacheds name", verb)
			}
		}
	}
}

// Every kind of object the operator creates, it must also be able to read,
// change and delete: an object a Memcached no longer asks for is deleted,
// and one the operator cannot delete stops every reconcile of its Memcached.
func TestRoleCoversEveryKindTheOperatorCreates(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		t.Fatal(err)
	}
	for _, kind := range resources.Kinds {
		resource, _ := meta.UnsafeGuessKindToResource(kind.GroupVersionKind)
		granted := map[string]bool{}
		for _, rule := range role.Rules {
			group := kind.Group
			if group == "" {
				group = "core"
			}
			if (slices.Contains(rule.APIGroups, kind.Group) || slices.Contains(rule.APIGroups, group)) &&
				slices.Contains(rule.Resources, resource.Resource) {
				for _, verb := range rule.Verbs {
					granted[verb] = true
				}
			}
		}
		for _, verb := range []string{"get", "list", "watch", "create", "patch", "delete"} {
			if !granted[verb] {
				t.Errorf("the operator's role does not grant %s on %s, which it creates", verb, resource.GroupResource())
			}
		}
	}
}
