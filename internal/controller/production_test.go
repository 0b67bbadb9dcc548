package controller

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

func getMemcached(t *testing.T, g Gomega, mc *cachev1alpha1.Memcached) *cachev1alpha1.Memcached {
	current := &cachev1alpha1.Memcached{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
	return current
}

// converged waits until the operator has reconciled the current generation of mc.
func converged(t *testing.T, mc *cachev1alpha1.Memcached) *cachev1alpha1.Memcached {
	t.Helper()
	var current *cachev1alpha1.Memcached
	NewWithT(t).Eventually(func(g Gomega) {
		current = getMemcached(t, g, mc)
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		g.Expect(current.Status.Conditions).To(HaveLen(3))
	}).Should(Succeed())
	return current
}

// setPodReady marks pod Running and Ready with ip, as a kubelet would.
func setPodReady(t *testing.T, pod *corev1.Pod, ip string) {
	t.Helper()
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
	}
	if err := k8sClient.Status().Update(t.Context(), pod); err != nil {
		t.Fatalf("Failed to update pod status: %v", err)
	}
}

func TestServicesAreOwnedAndDriftCorrected(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)

	for _, tc := range []struct {
		name      string
		clusterIP string
	}{{"cache", ""}, {"cache-headless", corev1.ClusterIPNone}} {
		svc := &corev1.Service{}
		g.Eventually(func() error {
			return k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: tc.name}, svc)
		}).Should(Succeed())
		g.Expect(metav1.IsControlledBy(svc, mc)).To(BeTrue())
		g.Expect(svc.Spec.Selector).To(Equal(resources.SelectorLabels(mc)))
		g.Expect(svc.Spec.Ports).To(HaveLen(1))
		g.Expect(svc.Spec.Ports[0].Port).To(Equal(int32(11211)))
		if tc.clusterIP == corev1.ClusterIPNone {
			g.Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		} else {
			g.Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeClusterIP))
		}

		// A hand edit of the selector is put back.
		edited := svc.DeepCopy()
		edited.Spec.Selector = map[string]string{"app": "other"}
		g.Expect(k8sClient.Patch(t.Context(), edited, client.MergeFrom(svc), client.FieldOwner("kubectl-edit"))).To(Succeed())
		g.Eventually(func(g Gomega) map[string]string {
			current := &corev1.Service{}
			g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(svc), current)).To(Succeed())
			return current.Spec.Selector
		}).Should(Equal(resources.SelectorLabels(mc)))
	}
}

func TestScaleSubresource(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	createPod(t, mc, "cache-a")
	g.Eventually(func(g Gomega) int32 { return getMemcached(t, g, mc).Status.Replicas }).Should(Equal(int32(1)))

	scale := &autoscalingv1.Scale{}
	g.Expect(k8sClient.SubResource("scale").Get(t.Context(), mc, scale)).To(Succeed())
	g.Expect(scale.Spec.Replicas).To(Equal(int32(2)))
	g.Expect(scale.Status.Replicas).To(Equal(int32(1)))
	g.Expect(scale.Status.Selector).To(Equal("app.kubernetes.io/instance=cache,app.kubernetes.io/name=memcached"))

	// What kubectl scale and the HorizontalPodAutoscaler do.
	scale.Spec.Replicas = 4
	g.Expect(k8sClient.SubResource("scale").Update(t.Context(), mc, client.WithSubResourceBody(scale))).To(Succeed())
	g.Expect(getMemcached(t, g, mc).Spec.Size).To(Equal(int32(4)))
	g.Eventually(replicasOf(t, mc)).Should(Equal(int32(4)))
}

func TestStatusReportsReadinessAndServers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	b := createPod(t, mc, "cache-b")
	a := createPod(t, mc, "cache-a")

	current := converged(t, mc)
	g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionAvailable)).To(BeTrue())
	g.Expect(current.Status.ServerList).To(BeEmpty())

	setPodReady(t, b, "10.1.0.2")
	setPodReady(t, a, "10.1.0.1")
	g.Eventually(func(g Gomega) {
		s := getMemcached(t, g, mc).Status
		g.Expect(s.ReadyReplicas).To(Equal(int32(2)))
		g.Expect(s.ServerList).To(Equal([]string{"10.1.0.1:11211", "10.1.0.2:11211"}))
		available := meta.FindStatusCondition(s.Conditions, cachev1alpha1.ConditionAvailable)
		g.Expect(available).NotTo(BeNil())
		g.Expect(available.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(available.Reason).To(Equal(status.ReasonAllReplicasReady))
		g.Expect(available.ObservedGeneration).To(Equal(current.Generation))
		g.Expect(meta.IsStatusConditionFalse(s.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	}).Should(Succeed())
}

func TestInvalidSpecsAreRefused(t *testing.T) {
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	deployment := deploymentOf(t, mc)
	original := converged(t, mc)

	tests := []struct {
		name    string
		mutate  func(*cachev1alpha1.MemcachedSpec)
		message string
	}{
		{"negative size", func(s *cachev1alpha1.MemcachedSpec) { s.Size = -1 }, "spec.size"},
		{"extra -p", func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{"-p", "80"} }, "extraArgs may not set -p"},
		{"extra -U1", func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{"-U1"} }, "extraArgs may not set"},
		{"extra --memory-limit", func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{"--memory-limit=4096"} }, "extraArgs may not set"},
		{"extra -vm in one cluster", func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{"-vm", "8"} }, "extraArgs may not set"},
		{"item size above half the memory", func(s *cachev1alpha1.MemcachedSpec) { s.MaxItemSizeKB = 64 * 1024 }, "maxItemSizeKB may be at most half of memoryMB"},
		{"zero threads", func(s *cachev1alpha1.MemcachedSpec) { s.Threads = -1 }, "spec.threads"},
		{"verbosity 3", func(s *cachev1alpha1.MemcachedSpec) { s.Verbosity = 3 }, "spec.verbosity"},
		{"pod label taking the instance", func(s *cachev1alpha1.MemcachedSpec) {
			s.PodLabels = map[string]string{resources.InstanceLabel: "other"}
		}, "podLabels may not set"},
		{"preStop delay as long as the grace period", func(s *cachev1alpha1.MemcachedSpec) {
			s.PreStopDelaySeconds, s.TerminationGracePeriodSeconds = ptr.To[int32](30), ptr.To[int64](30)
		}, "preStopDelaySeconds must be shorter than terminationGracePeriodSeconds"},
		{"both maxUnavailable and minAvailable", func(s *cachev1alpha1.MemcachedSpec) {
			s.PodDisruptionBudget = &cachev1alpha1.PodDisruptionBudgetSpec{
				MaxUnavailable: ptr.To(intstr.FromInt32(1)), MinAvailable: ptr.To(intstr.FromInt32(1))}
		}, "set at most one of maxUnavailable and minAvailable"},
		{"maxUnavailable that is no percentage", func(s *cachev1alpha1.MemcachedSpec) {
			s.PodDisruptionBudget = &cachev1alpha1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromString("half"))}
		}, "maxUnavailable must be a non-negative number or a percentage"},
		{"auth without a Secret name", func(s *cachev1alpha1.MemcachedSpec) {
			s.Auth = &cachev1alpha1.AuthSpec{}
		}, "spec.auth.secretName"},
		{"monitoring with auth", func(s *cachev1alpha1.MemcachedSpec) {
			s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"}
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
		}, "monitoring.enabled cannot be combined with auth"},
		{"monitoring with client certificates", func(s *cachev1alpha1.MemcachedSpec) {
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert", ClientCASecretName: "ca"}
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
		}, "monitoring.enabled cannot be combined with tls.clientCASecretName"},
		{"scrape interval that is no duration", func(s *cachev1alpha1.MemcachedSpec) {
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true, Interval: "often"}
		}, "spec.monitoring.interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			// Refused when creating...
			bad := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}, Spec: *original.Spec.DeepCopy()}
			tt.mutate(&bad.Spec)
			err := k8sClient.Create(t.Context(), bad)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tt.message))

			// ...and when updating an existing Memcached, which stays as it was.
			edited := original.DeepCopy()
			tt.mutate(&edited.Spec)
			err = k8sClient.Patch(t.Context(), edited, client.MergeFrom(original))
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tt.message))
			g.Expect(getMemcached(t, g, mc).Generation).To(Equal(original.Generation))
		})
	}

	g := NewWithT(t)
	err := k8sClient.Create(t.Context(), &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a-name-much-too-long-for-the-headless-service-to-be-valid"}})
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
	g.Expect(err.Error()).To(ContainSubstring("metadata.name must be a DNS label of at most 54 characters"))

	current := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(deployment), current)).To(Succeed())
	g.Expect(current.Generation).To(Equal(deployment.Generation), "the Deployment was changed")
}

func TestTooSmallMemoryLimitDegradesAndKeepsPods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	deployment := deploymentOf(t, mc)

	patch := client.MergeFrom(mc.DeepCopy())
	mc.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}
	g.Expect(k8sClient.Patch(t.Context(), mc, patch)).To(Succeed())

	g.Eventually(func(g Gomega) {
		degraded := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)
		g.Expect(degraded).NotTo(BeNil())
		g.Expect(degraded.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(degraded.Reason).To(Equal(status.ReasonInvalidSpec))
		g.Expect(degraded.Message).To(ContainSubstring("resources.limits.memory 64Mi is too small for memoryMB 64"))
		g.Expect(degraded.ObservedGeneration).To(Equal(mc.Generation))
	}).Should(Succeed())
	g.Consistently(func(g Gomega) int64 {
		current := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(deployment), current)).To(Succeed())
		return current.Generation
	}).Should(Equal(deployment.Generation), "the Deployment was changed")

	// Fixing the spec clears the condition and applies it.
	patch = client.MergeFrom(mc.DeepCopy())
	mc.Spec.Resources.Limits[corev1.ResourceMemory] = resource.MustParse("256Mi")
	g.Expect(k8sClient.Patch(t.Context(), mc, patch)).To(Succeed())
	converged(t, mc)
	g.Expect(meta.IsStatusConditionFalse(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	g.Expect(deploymentOf(t, mc).Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String()).To(Equal("256Mi"))
}

func TestTuningChangesThePodTemplate(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	before := deploymentOf(t, mc).Spec.Template.Spec.Containers[0]
	g.Expect(before.Args).To(ContainElements("-m", "64", "-c", "1024", "-t", "4", "-I", "1024k"))
	g.Expect(before.Resources.Limits.Memory().String()).To(Equal("102Mi"))

	patch := client.MergeFrom(mc.DeepCopy())
	mc.Spec.MemoryMB = 256
	mc.Spec.Threads = 8
	mc.Spec.ExtraArgs = []string{"-o", "modern"}
	mc.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	mc.Spec.PodLabels = map[string]string{"team": "cache"}
	g.Expect(k8sClient.Patch(t.Context(), mc, patch)).To(Succeed())

	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), d)).To(Succeed())
		c := d.Spec.Template.Spec.Containers[0]
		g.Expect(c.Args).To(Equal([]string{"-p", "11211", "-U", "0", "-m", "256", "-c", "1024", "-t", "8", "-I", "1024k", "-o", "modern"}))
		g.Expect(c.Resources.Limits.Memory().String()).To(Equal("313Mi"))
		g.Expect(d.Spec.Template.Spec.NodeSelector).To(Equal(map[string]string{"disk": "ssd"}))
		g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue("team", "cache"))
		g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue(resources.InstanceLabel, "cache"))
	}).Should(Succeed())
	g.Eventually(eventReasons(t, mc)).Should(ContainElement("ConfigChanged"))
}

func TestEventsTellWhatChanged(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)

	patch := client.MergeFrom(mc.DeepCopy())
	mc.Spec.Size = 3
	g.Expect(k8sClient.Patch(t.Context(), mc, patch)).To(Succeed())

	g.Eventually(eventReasons(t, mc)).Should(ContainElements("Created", "Scaled"))
}

// eventReasons lists the reasons of the events about mc, for Eventually.
func eventReasons(t *testing.T, mc *cachev1alpha1.Memcached) func(Gomega) []string {
	return func(g Gomega) []string {
		list := &eventsv1.EventList{}
		g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(mc.Namespace))).To(Succeed())
		var reasons []string
		for _, e := range list.Items {
			if e.Regarding.Name == mc.Name && e.Regarding.Kind == "Memcached" {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}
}

func TestSteadyStateSendsNothing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	setPodReady(t, createPod(t, mc, "cache-a"), "10.1.0.1")
	setPodReady(t, createPod(t, mc, "cache-b"), "10.1.0.2")
	// Converged: envtest runs no Deployment controller, so the Deployment
	// stays "rolling out" for good.
	g.Eventually(func(g Gomega) {
		s := converged(t, mc).Status
		g.Expect(s.ServerList).To(HaveLen(2))
		g.Expect(meta.FindStatusCondition(s.Conditions, cachev1alpha1.ConditionProgressing).Reason).To(Equal(status.ReasonRollingOut))
	}).Should(Succeed())

	writes := func() []string { return requests.inNamespace(ns, true) }
	settled := writes()
	t.Logf("Writes to converge a new Memcached of 2 pods: %d %v", len(settled), settled)

	// A quiet period: no write at all.
	g.Consistently(writes, 5*time.Second, 250*time.Millisecond).Should(Equal(settled))

	// A reconcile that finds nothing to do sends no request at all: it reads
	// only from the cache.
	before := len(requests.inNamespace(ns, false))
	_, err := reconciler.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(mc)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(requests.inNamespace(ns, false)[before:]).To(BeEmpty())
}
