package controller

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

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
		{"item size above half the memory", func(s *cachev1alpha1.MemcachedSpec) { s.MaxItemSizeKB = 64 * 1024 }, "maxItemSizeKB may be at most half of memoryMB"},
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
		}, "requests must be quantities of at least 0"},
		{"negative CPU limit", func(s *cachev1alpha1.MemcachedSpec) {
			s.Resources = &cachev1alpha1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("-1")}}
		}, "limits must be quantities of at least 0"},
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
		{"monitoring with client certificates", func(s *cachev1alpha1.MemcachedSpec) {
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert", ClientCASecretName: "ca"}
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
		}, "monitoring.enabled cannot be combined with tls.clientCASecretName"},
		{"scrape interval that is no duration", func(s *cachev1alpha1.MemcachedSpec) {
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true, Interval: "often"}
		}, "spec.monitoring.interval"},
		{"warm restart of a Deployment", func(s *cachev1alpha1.MemcachedSpec) {
			s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
		}, "warmRestart needs workload: StatefulSet"},
		{"warm restart without the time to save", func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
			s.TerminationGracePeriodSeconds = ptr.To[int64](12)
		}, "terminationGracePeriodSeconds must be at least"},
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

func TestExtraArgsThatUndoAGuaranteeAreRefusedWithACondition(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	deployment := deploymentOf(t, mc)

	for _, tt := range []struct {
		args    []string
		message string
	}{
		{[]string{"--udp=11211"}, `spec.extraArgs[0] "--udp=11211"`},
		{[]string{"-R", "20", "-l", "notls:0.0.0.0:11212"}, `spec.extraArgs[2] "-l": this option may not be set`},
		{[]string{"-o", "ssl_verify_mode=0"}, "-o ssl_verify_mode may not be set: TLS is set by spec.tls"},
		{[]string{"-m", "4096"}, "memory is set by spec.memoryMB"},
		{[]string{"-d"}, "foreground"},
	} {
		patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = tt.args })
		expectDegraded(t, mc, status.ReasonInvalidSpec, tt.message)
		expectUnchanged(t, deployment)
	}
	g.Eventually(eventReasons(t, mc)).Should(ContainElement(status.ReasonInvalidSpec))

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.ExtraArgs = []string{"-R", "20"} })
	converged(t, mc)
	args := deploymentOf(t, mc).Spec.Template.Spec.Containers[0].Args
	g.Expect(args[len(args)-2:]).To(Equal([]string{"-R", "20"}))
}

func TestTooSmallMemoryLimitDegradesAndKeepsPods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	deployment := deploymentOf(t, mc)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Resources = &cachev1alpha1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}
	})
	g.Eventually(func(g Gomega) {
		degraded := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)
		g.Expect(degraded).NotTo(BeNil())
		g.Expect(degraded.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(degraded.Reason).To(Equal(status.ReasonInvalidSpec))
		g.Expect(degraded.Message).To(ContainSubstring("resources.limits.memory 64Mi is too small for memoryMB 64"))
		g.Expect(degraded.ObservedGeneration).To(Equal(mc.Generation))
	}).Should(Succeed())
	expectUnchanged(t, deployment)

	// Fixing the spec clears the condition and applies it.
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
	expectUnchanged(t, deployment)
	// Nothing is retried until the spec changes.
	before := len(requests.writesIn(ns))
	g.Consistently(func() []string { return requests.writesIn(ns)[before:] }, quietPeriod, 250*time.Millisecond).
		Should(BeEmpty())

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Resources.Requests[corev1.ResourceCPU] = resource.MustParse("50m")
	})
	converged(t, mc)
	g.Expect(meta.IsStatusConditionFalse(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	g.Expect(deploymentOf(t, mc).Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().String()).To(Equal("50m"))
}

// TestEveryAcceptedValueDecodes walks the Memcached schema and, for every
// number and int-or-string in it, submits values a Go client cannot read or
// reads only slowly: each is refused at admission, or, if accepted, decodes
// at once. An undecodable Memcached would break the list and watch of all
// of them, and stall the operator for every namespace.
func TestEveryAcceptedValueDecodes(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "cache.example.com_memcacheds.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	crd := &apiextensionsv1.CustomResourceDefinition{}
	g.Expect(yaml.Unmarshal(data, crd)).To(Succeed())
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]

	hostile := map[string][]any{
		"integer": {int64(1) << 31, int64(math.MaxInt64), -(int64(1) << 31) - 1},
		"int-or-string": {int64(1) << 31, int64(math.MaxInt64), "1e-1000000000", "1e1000000000", "9e99999999999",
			strings.Repeat("9", 200), "0." + strings.Repeat("0", 200) + "1", "100000000000%", "-1%"},
	}
	var exercised, accepted int
	walk(spec, []string{"spec"}, func(path []string, s apiextensionsv1.JSONSchemaProps) {
		kind := s.Type
		if s.XIntOrString {
			kind = "int-or-string"
		}
		for _, value := range hostile[kind] {
			exercised++
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
				"metadata": map[string]any{"namespace": ns, "generateName": "hostile-"},
			}}
			obj.Object["spec"] = build(spec, path[1:], value)
			if err := k8sClient.Create(t.Context(), obj); err != nil {
				g.Expect(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)).To(BeTrue(), "%s = %v: %v", strings.Join(path, "."), value, err)
				continue
			}
			accepted++
			raw, err := json.Marshal(obj.Object)
			g.Expect(err).NotTo(HaveOccurred())
			decoded := make(chan error, 1)
			go func() { decoded <- json.Unmarshal(raw, &cachev1alpha1.Memcached{}) }()
			select {
			case err := <-decoded:
				g.Expect(err).NotTo(HaveOccurred(), "%s = %v is accepted but cannot be read", strings.Join(path, "."), value)
			case <-time.After(5 * time.Second):
				t.Fatalf("%s = %v is accepted and reading it does not end", strings.Join(path, "."), value)
			}
			g.Expect(k8sClient.Delete(t.Context(), obj)).To(Succeed())
		}
	})
	t.Logf("Submitted %d hostile values; %d were accepted, and each decoded", exercised, accepted)
	g.Expect(exercised).To(BeNumerically(">", 50), "the walk found too few numbers to test")
}

// walk calls visit for every leaf of type integer, or int-or-string, of s.
func walk(s apiextensionsv1.JSONSchemaProps, path []string, visit func([]string, apiextensionsv1.JSONSchemaProps)) {
	switch {
	case s.XIntOrString || s.Type == "integer":
		visit(path, s)
	case s.Type == "array" && s.Items != nil && s.Items.Schema != nil:
		walk(*s.Items.Schema, append(slices.Clone(path), "[]"), visit)
	case s.Type == "object" && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil:
		walk(*s.AdditionalProperties.Schema, append(slices.Clone(path), "{}"), visit)
	case s.Type == "object":
		for name, p := range s.Properties {
			walk(p, append(slices.Clone(path), name), visit)
		}
	}
}

// build returns an object of schema s holding value at path, and
// placeholders for the fields s requires. "[]" is the only element of a
// list, "{}" a key of a map.
func build(s apiextensionsv1.JSONSchemaProps, path []string, value any) any {
	if len(path) == 0 {
		return value
	}
	switch path[0] {
	case "[]":
		return []any{build(*s.Items.Schema, path[1:], value)}
	case "{}":
		return map[string]any{"memory": build(*s.AdditionalProperties.Schema, path[1:], value)}
	}
	obj := map[string]any{}
	for _, name := range s.Required {
		if name != path[0] {
			obj[name] = placeholder(s.Properties[name])
		}
	}
	obj[path[0]] = build(s.Properties[path[0]], path[1:], value)
	return obj
}

// placeholder returns a valid value of schema s, as far as its type says.
func placeholder(s apiextensionsv1.JSONSchemaProps) any {
	switch s.Type {
	case "string":
		if len(s.Enum) > 0 {
			var v any
			_ = json.Unmarshal(s.Enum[0].Raw, &v)
			return v
		}
		return "x"
	case "integer":
		return int64(1)
	case "boolean":
		return true
	case "array":
		return []any{}
	default:
		obj := map[string]any{}
		for _, name := range s.Required {
			obj[name] = placeholder(s.Properties[name])
		}
		return obj
	}
}
