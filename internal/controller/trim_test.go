package controller

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// fullPod returns a memcached pod as the API server serves it, with the
// fields nothing of the operator reads, and mutate applied.
func fullPod(name string, mutate func(*corev1.Pod)) corev1.Pod {
	pod := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "ns", UID: types.UID("uid-" + name), ResourceVersion: "7",
			Labels: map[string]string{resources.InstanceLabel: "cache", resources.NameLabel: resources.AppName,
				"pod-template-hash": "5d64ff5968"},
			Annotations: map[string]string{resources.TemplateHashAnnotation: "t1", "kubectl.kubernetes.io/restartedAt": "now",
				"big": strings.Repeat("x", 4096)},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate,
				Subresource: "status"}},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "cache-5d64ff5968",
				UID: "rs", Controller: ptr.To(true)}},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Containers: []corev1.Container{{Name: "memcached", Image: "memcached:1.6",
				Args: []string{"-m", "64"}, Env: []corev1.EnvVar{{Name: "A", Value: "b"}}}},
			Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0.1", HostIP: "10.1.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}},
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "memcached", Ready: true, RestartCount: 2,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
		},
	}
	if mutate != nil {
		mutate(&pod)
	}
	return pod
}

func notReady(pod *corev1.Pod) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady || pod.Status.Conditions[i].Type == corev1.ContainersReady {
			pod.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	pod.Status.ContainerStatuses[0].Ready = false
}

func TestStatusFromTrimmedPodsIsTheStatusFromFullPods(t *testing.T) {
	now := metav1.Now()
	deployment := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: "ns", Generation: 1,
		Annotations: map[string]string{resources.TemplateHashAnnotation: "t1"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2)}, Status: appsv1.DeploymentStatus{ObservedGeneration: 1}}
	statefulSet := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: "ns", Generation: 1,
		Annotations: map[string]string{resources.TemplateHashAnnotation: "t1"}},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "memory-file"}}}},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1}}

	cases := map[string]struct {
		pods     []corev1.Pod
		workload cachev1alpha1.WorkloadKind
	}{
		"ready":         {pods: []corev1.Pod{fullPod("cache-a", nil), fullPod("cache-b", nil)}},
		"one not ready": {pods: []corev1.Pod{fullPod("cache-a", nil), fullPod("cache-b", notReady)}},
		"pending, without an IP": {pods: []corev1.Pod{fullPod("cache-a", nil), fullPod("cache-b", func(p *corev1.Pod) {
			notReady(p)
			p.Status.Phase, p.Status.PodIP, p.Status.PodIPs = corev1.PodPending, "", nil
		})}},
		"unschedulable": {pods: []corev1.Pod{fullPod("cache-a", func(p *corev1.Pod) {
			notReady(p)
			p.Spec.NodeName, p.Status.Phase, p.Status.PodIP = "", corev1.PodPending, ""
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				// Longer messages are cut (TestTrimPodKeepsWhyItCannotRun).
				Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 node(s) didn't match Pod's " +
					"node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."}}
		})}},
		"crash looping": {pods: []corev1.Pod{fullPod("cache-a", nil), fullPod("cache-b", func(p *corev1.Pod) {
			notReady(p)
			p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container"}}
		})}},
		"an init container waits": {pods: []corev1.Pod{fullPod("cache-a", func(p *corev1.Pod) {
			notReady(p)
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", State: corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "pull failed"}}}}
		})}},
		"being deleted": {pods: []corev1.Pod{fullPod("cache-a", nil), fullPod("cache-b", func(p *corev1.Pod) {
			p.DeletionTimestamp = &now
		})}},
		"of an older template": {pods: []corev1.Pod{fullPod("cache-a", nil), fullPod("cache-b", func(p *corev1.Pod) {
			p.Annotations[resources.TemplateHashAnnotation] = "t0"
		})}},
		"stateful set, a pod without its claim": {workload: cachev1alpha1.WorkloadStatefulSet, pods: []corev1.Pod{
			fullPod("cache-0", func(p *corev1.Pod) {
				p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "memory-file", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "memory-file-cache-0"}}})
			}),
			fullPod("cache-1", nil),
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			mc := newMemcachedForStatus()
			mc.Spec.Size = 2
			observed := status.Observed{Deployment: deployment}
			if c.workload != "" {
				mc.Spec.Workload = c.workload
				observed = status.Observed{StatefulSet: statefulSet}
			}
			trimmedObserved := observed
			observed.Pods = c.pods
			for _, pod := range c.pods {
				out, err := trimPod(pod.DeepCopy())
				if err != nil {
					t.Fatal(err)
				}
				trimmedObserved.Pods = append(trimmedObserved.Pods, *out.(*corev1.Pod))
			}
			compute := func(observed status.Observed) cachev1alpha1.MemcachedStatus {
				return status.Compute(mc, observed, status.Outcome{}, status.PlanServers(mc, observed, now), now)
			}
			got, want := compute(trimmedObserved), compute(observed)
			if !equality.Semantic.DeepEqual(got, want) {
				t.Errorf("status from trimmed pods\n%+v\ndiffers from the one from full pods\n%+v", got, want)
			}
		})
	}
}

func TestTheCacheKeepsNeitherAnnotationsNorManagedFieldsOfAMemcached(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	lastApplied := "kubectl.kubernetes.io/last-applied-configuration"
	mc := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "applied",
			Annotations: map[string]string{lastApplied: strings.Repeat("x", 8192)}},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1},
	}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	live := converged(t, mc)
	g.Expect(live.Annotations).To(HaveKey(lastApplied))
	g.Expect(live.ManagedFields).NotTo(BeEmpty())

	cached := newMemcached()
	g.Expect(reconciler.memcacheds.Get(t.Context(), client.ObjectKeyFromObject(mc), cached)).To(Succeed())
	g.Expect(cached.GetAnnotations()).To(BeEmpty())
	g.Expect(cached.GetManagedFields()).To(BeEmpty())
	g.Expect(cached.Object).To(HaveKey("spec"))
	g.Expect(cached.Object).To(HaveKey("status"))
}
