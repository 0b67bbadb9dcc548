package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

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
		{"extra argument with a space", func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{"-p 80"} }, "each of extraArgs"},
		{"empty extra argument", func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{""} }, "each of extraArgs"},
		{"UDP port", func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{"-U", "11211"} },
			"-U may not be set: UDP stays off"},
		{"prefix of --udp-port", func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{"--udp=11211"} },
			"--udp=11211: not an option that may be set; long options must be written in full"},
		{"port", func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{"-p", "1"} },
			"-p may not be set: the operator sets the port to 11211"},
		{"memory limit below memoryMB + 10% + 32Mi", func(s *cachev1alpha1.MemcachedSpec) {
			s.Resources = &cachev1alpha1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("101Mi")}}
		}, "resources.limits.memory 101Mi is too small for memoryMB"},
		{"item size above half the memory", func(s *cachev1alpha1.MemcachedSpec) { s.MaxItemSizeKB = 64 * 1024 }, "maxItemSizeKB may be at most half of memoryMB"},
		{"item size not a multiple of 512", func(s *cachev1alpha1.MemcachedSpec) { s.MaxItemSizeKB = 1025 }, "maxItemSizeKB must be a multiple of 512"},
		{"zero threads", func(s *cachev1alpha1.MemcachedSpec) { s.Threads = -1 }, "spec.threads"},
		{"verbosity 3", func(s *cachev1alpha1.MemcachedSpec) { s.Verbosity = 3 }, "spec.verbosity"},
		{"unknown workload", func(s *cachev1alpha1.MemcachedSpec) { s.Workload = "DaemonSet" }, "spec.workload"},
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
		}, "maxUnavailable must be a number from 0 to 2147483647 or a percentage"},
		{"maxUnavailable above 100%", func(s *cachev1alpha1.MemcachedSpec) {
			s.PodDisruptionBudget = &cachev1alpha1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromString("150%"))}
		}, "maxUnavailable must be a number from 0 to 2147483647 or a percentage"},
		{"negative memory request", func(s *cachev1alpha1.MemcachedSpec) {
			s.Resources = &cachev1alpha1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("-1Gi")}}
		}, "requests must be quantities such as"},
		{"negative CPU limit", func(s *cachev1alpha1.MemcachedSpec) {
			s.Resources = &cachev1alpha1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("-1")}}
		}, "limits must be quantities such as"},
		{"auth without a Secret name", func(s *cachev1alpha1.MemcachedSpec) {
			s.Auth = &cachev1alpha1.AuthSpec{}
		}, "spec.auth.secretName"},
		{"auth Secret name that is no name", func(s *cachev1alpha1.MemcachedSpec) {
			s.Auth = &cachev1alpha1.AuthSpec{SecretName: "a/b"}
		}, "spec.auth.secretName"},
		{"TLS Secret name that is no name", func(s *cachev1alpha1.MemcachedSpec) {
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "Cert"}
		}, "spec.tls.secretName"},
		{"monitoring with auth", func(s *cachev1alpha1.MemcachedSpec) {
			s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"}
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
		}, "monitoring.enabled cannot be combined with auth"},
		{"monitoring of a memcached asking for client certificates, without one", func(s *cachev1alpha1.MemcachedSpec) {
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert", ClientCASecretName: "ca"}
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
		}, "monitoring.enabled with tls.clientCASecretName needs monitoring.tls.clientCertificateSecretName"},
		{"exporter client certificate without TLS", func(s *cachev1alpha1.MemcachedSpec) {
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true,
				TLS: &cachev1alpha1.MonitoringTLSSpec{ClientCertificateSecretName: "scraper"}}
		}, "monitoring.tls needs tls"},
		{"exporter client certificate Secret name that is no name", func(s *cachev1alpha1.MemcachedSpec) {
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert"}
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true,
				TLS: &cachev1alpha1.MonitoringTLSSpec{ClientCertificateSecretName: "Scraper"}}
		}, "spec.monitoring.tls.clientCertificateSecretName"},
		{"scrape interval that is no duration", func(s *cachev1alpha1.MemcachedSpec) {
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true, Interval: "often"}
		}, "spec.monitoring.interval"},
		{"proxy in front of a Deployment", func(s *cachev1alpha1.MemcachedSpec) {
			s.Proxy = &cachev1alpha1.ProxySpec{Enabled: true}
		}, "proxy needs workload: StatefulSet"},
		{"proxy with TLS", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.Proxy = &cachev1alpha1.ProxySpec{Enabled: true}
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert"}
		}, "proxy cannot be combined with tls"},
		{"proxy with auth", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.Proxy = &cachev1alpha1.ProxySpec{Enabled: true}
			s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"}
		}, "proxy cannot be combined with auth"},
		{"no proxy at all", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.Proxy = &cachev1alpha1.ProxySpec{Enabled: true, Replicas: -1}
		}, "spec.proxy.replicas"},
		{"warm restart of a Deployment", func(s *cachev1alpha1.MemcachedSpec) {
			s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
		}, "warmRestart needs workload: StatefulSet"},
		{"warm restart without the time to save", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
			s.TerminationGracePeriodSeconds = ptr.To[int64](12)
		}, "terminationGracePeriodSeconds must be at least"},
		{"extstore on a Deployment", func(s *cachev1alpha1.MemcachedSpec) {
			s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true}
		}, "extstore needs workload: StatefulSet"},
		{"extstore with warm restart", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
			s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true}
		}, "extstore cannot be combined with warmRestart"},
		{"extstore with items larger than its write buffers", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.MemoryMB, s.MaxItemSizeKB = 1024, 4096
			s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true, WriteBufferMB: 2}
		}, "maxItemSizeKB may be at most extstore.writeBufferMB * 1024"},
		{"extstore volume too small for a page", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "64Mi"}
		}, "extstore.size is too small"},
		{"extstore volume of too many pages", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "5Ti"}
		}, "extstore.size is too large"},
		{"extstore size that is no size", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "10GB"}
		}, "extstore.size must be a whole number of Mi, Gi or Ti"},
		{"extstore write buffer that does not divide a page", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true, WriteBufferMB: 48}
		}, "spec.extstore.writeBufferMB"},
		{"extstore options in extraArgs", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true}
			s.ExtraArgs = []string{"-o", "ext_page_size=32"}
		}, "ext_page_size may not be set: extstore is set by spec.extstore"},
		{"extstore memory limit without the write buffers", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true}
			s.Resources = &cachev1alpha1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("200Mi")}}
		}, "and 7 x extstore.writeBufferMB with extstore"},
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
	err = k8sClient.Create(t.Context(), &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a-name-of-fifty-three-characters-for-a-stateful-setxx"},
		Spec:       cachev1alpha1.MemcachedSpec{Workload: cachev1alpha1.WorkloadStatefulSet}})
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
	g.Expect(err.Error()).To(ContainSubstring("at most 52 characters"))

	expectUnchanged(t, deployment)
}

func TestMemoryCannotChangeUnderWarmRestart(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1, Workload: cachev1alpha1.WorkloadStatefulSet,
			WarmRestart: &cachev1alpha1.WarmRestartSpec{Enabled: true}}}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	current := getMemcached(t, g, mc)
	patch := client.MergeFrom(current.DeepCopy())
	current.Spec.MemoryMB = 128
	err := k8sClient.Patch(t.Context(), current, patch)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
	g.Expect(err.Error()).To(ContainSubstring("memoryMB cannot change while warmRestart is enabled"))

	// Turning warm restart off first, it can.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.WarmRestart.Enabled = false })
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.MemoryMB = 128 })
}

// TestExtraArgsThatUndoAGuaranteeAreRefusedAtAdmission: the CRD's rules,
// generated from the operator's own option tables, refuse what the operator
// would refuse, with the operator's reason, and leave the Memcached and its
// pods as they were. The operator's own check, for a Memcached stored before
// a rule, is tested with the option tables in internal/memcached.
func TestExtraArgsThatUndoAGuaranteeAreRefusedAtAdmission(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	original := converged(t, mc)
	deployment := deploymentOf(t, mc)

	for _, tt := range []struct {
		args    []string
		message string
	}{
		{[]string{"--udp=11211"}, "--udp=11211: not an option that may be set; long options must be written in full"},
		{[]string{"-R", "20", "-l", "notls:0.0.0.0:11212"}, "-l may not be set: the operator decides where memcached listens"},
		{[]string{"-o", "ssl_verify_mode=0"}, "ssl_verify_mode may not be set: TLS is set by spec.tls"},
		{[]string{"-m", "4096"}, "-m may not be set: memory is set by spec.memoryMB"},
		{[]string{"-d"}, "-d may not be set: memcached runs in the foreground"},
	} {
		edited := original.DeepCopy()
		edited.Spec.ExtraArgs = tt.args
		err := k8sClient.Patch(t.Context(), edited, client.MergeFrom(original))
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%q: error %v", tt.args, err)
		g.Expect(err.Error()).To(ContainSubstring(tt.message))
	}
	g.Expect(getMemcached(t, g, mc).Generation).To(Equal(original.Generation))
	expectUnchanged(t, deployment)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{"-R", "20"} })
	converged(t, mc)
	args := deploymentOf(t, mc).Spec.Template.Spec.Containers[0].Args
	g.Expect(args[len(args)-2:]).To(Equal([]string{"-R", "20"}))
}

// TestTooSmallMemoryLimitIsRefusedAtAdmission: a memory limit below what
// memoryMB needs is refused when it is set, and when memoryMB grows past it;
// the pods keep running as they were, and a limit large enough applies.
func TestTooSmallMemoryLimitIsRefusedAtAdmission(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	original := converged(t, mc)
	deployment := deploymentOf(t, mc)

	edited := original.DeepCopy()
	edited.Spec.Resources = &cachev1alpha1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}
	err := k8sClient.Patch(t.Context(), edited, client.MergeFrom(original))
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
	g.Expect(err.Error()).To(ContainSubstring("resources.limits.memory 64Mi is too small for memoryMB: memcached needs memoryMB + 10% + 32Mi"))
	g.Expect(getMemcached(t, g, mc).Generation).To(Equal(original.Generation))
	expectUnchanged(t, deployment)

	// 102Mi is what the default 64 MB need.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Resources = &cachev1alpha1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("102Mi")}}
	})
	current := getMemcached(t, g, mc)
	grown := current.DeepCopy()
	grown.Spec.MemoryMB = 65
	err = k8sClient.Patch(t.Context(), grown, client.MergeFrom(current))
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "error %v", err)
	g.Expect(err.Error()).To(ContainSubstring("is too small for memoryMB"))

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Resources.Limits[corev1.ResourceMemory] = resource.MustParse("256Mi")
	})
	converged(t, mc)
	g.Expect(meta.IsStatusConditionFalse(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	g.Expect(deploymentOf(t, mc).Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String()).To(Equal("256Mi"))
	g.Expect(deploymentOf(t, mc).Generation).To(BeNumerically(">", deployment.Generation))
}

// TestObjectsTheAPIServerRefusesDegradeAndKeepPods covers the values that
// admission lets through but that the API server refuses in the objects
// built from them, such as a CPU request above the CPU limit: the Memcached
// tells what is wrong, nothing running changes, and no retry loop follows.
func TestObjectsTheAPIServerRefusesDegradeAndKeepPods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	deployment := deploymentOf(t, mc)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Resources = &cachev1alpha1.ResourceRequirements{
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
		}
	})
	g.Eventually(func(g Gomega) {
		degraded := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)
		g.Expect(degraded).NotTo(BeNil())
		g.Expect(degraded.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(degraded.Reason).To(Equal(status.ReasonInvalidSpec))
		g.Expect(degraded.Message).To(And(ContainSubstring("Deployment cache"), ContainSubstring("resources.requests")))
		g.Expect(degraded.ObservedGeneration).To(Equal(mc.Generation))
	}).Should(Succeed())
	// Its spec is as it was. Of the Deployment, which the operator created,
	// only the managed fields may have changed: before its first apply,
	// the fields of its create became applied ones (apply.go).
	refused := deploymentOf(t, mc)
	g.Expect(refused.Generation).To(Equal(deployment.Generation))
	g.Expect(equality.Semantic.DeepEqual(refused.Spec, deployment.Spec)).To(BeTrue(), "the Deployment's spec changed")
	expectUnchanged(t, refused)
	// Nothing is retried until the spec changes: a reconcile of the refused
	// spec returns no error, which the controller would retry with backoff,
	// and asks for no requeue.
	expectNoRetry(t, mc)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Resources.Requests[corev1.ResourceCPU] = resource.MustParse("50m")
	})
	converged(t, mc)
	g.Expect(meta.IsStatusConditionFalse(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	g.Expect(deploymentOf(t, mc).Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().String()).To(Equal("50m"))
}
