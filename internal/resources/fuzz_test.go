package resources

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// admittedName is the rule the CRD sets on metadata.name.
var admittedName = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// fuzzSpec is a Memcached made from the fuzzer's inputs. Where an input is
// one the API server or the controller would refuse, a valid value stands in:
// Build only ever sees Memcacheds that passed both.
type fuzzSpec struct {
	name                      string
	size, memoryMB, verbosity int32
	features                  uint16
	extraArgs                 string
	pdb                       int32
}

// The bits of fuzzSpec.features.
const (
	featureStatefulSet = 1 << iota
	featureAuth
	featureTLS
	featureClientCA
	featureWarmRestart
	featureMonitoring
	featureNetworkPolicy
	featurePlatformUID
	featureDrainingStatefulSet
	featureRetire
	featurePDBPercent
	featurePDBMinAvailable
	featurePodLabels
)

func (f fuzzSpec) memcached() (*cachev1alpha1.Memcached, Inputs) {
	has := func(bit uint16) bool { return f.features&bit != 0 }
	name := f.name
	maxName := 54
	if has(featureStatefulSet) {
		maxName = 52
	}
	if len(name) > maxName || !admittedName.MatchString(name) {
		name = "mc"
	}
	mc := newMemcached(name, max(f.size, 0)%1000)
	spec := &mc.Spec
	spec.MemoryMB = 1 + max(f.memoryMB, 0)%(64*1024)
	spec.MaxItemSizeKB = min(1024, spec.MemoryMB*512)
	spec.Verbosity = max(f.verbosity, 0) % 3
	if has(featureStatefulSet) {
		spec.Workload = cachev1alpha1.WorkloadStatefulSet
		if has(featureWarmRestart) {
			spec.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
			spec.TerminationGracePeriodSeconds = ptr.To(int64(ptr.Deref(spec.PreStopDelaySeconds, 0)) + 10 + int64(spec.MemoryMB/1024))
		}
	}
	if has(featureAuth) {
		spec.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"}
	}
	if has(featureTLS) {
		spec.TLS = &cachev1alpha1.TLSSpec{SecretName: "tls"}
		if has(featureClientCA) {
			spec.TLS.ClientCASecretName = "client-ca"
		}
	}
	if has(featureMonitoring) && spec.Auth == nil && (spec.TLS == nil || spec.TLS.ClientCASecretName == "") {
		spec.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	}
	if has(featureNetworkPolicy) {
		spec.NetworkPolicy = &cachev1alpha1.NetworkPolicySpec{}
	}
	budget := intstr.FromInt32(max(f.pdb, 0))
	if has(featurePDBPercent) {
		budget = intstr.FromString(fmt.Sprintf("%d%%", max(f.pdb, 0)%101))
	}
	if has(featurePDBMinAvailable) {
		spec.PodDisruptionBudget = &cachev1alpha1.PodDisruptionBudgetSpec{MinAvailable: &budget}
	} else if f.pdb != 0 {
		spec.PodDisruptionBudget = &cachev1alpha1.PodDisruptionBudgetSpec{MaxUnavailable: &budget}
	}
	if has(featurePodLabels) {
		spec.PodLabels = map[string]string{"team": "payments"}
		spec.PodAnnotations = map[string]string{"example.com/note": f.extraArgs}
	}
	spec.ExtraArgs = strings.Split(f.extraArgs, "\n")
	if memcached.CheckExtraArgs(spec) != nil {
		spec.ExtraArgs = nil
	}

	in := Inputs{
		Digests: SecretDigests{Auth: "auth-digest", TLS: "tls-digest"},
		Servers: Servers{
			List:                   []string{"10.0.0.1:11211"},
			StatefulSetReplicas:    spec.Size,
			RetirePreviousWorkload: has(featureRetire),
		},
		PlatformAssignsUID: has(featurePlatformUID),
	}
	if has(featureDrainingStatefulSet) {
		in.Servers.StatefulSetReplicas = spec.Size + 2
	}
	return mc, in
}

func FuzzBuild(f *testing.F) {
	f.Add("example-memcached", int32(3), int32(64), int32(0), uint16(0), "", int32(0))
	f.Add("mc", int32(5), int32(1024), int32(2), uint16(featureStatefulSet|featureWarmRestart|featureTLS|featureClientCA), "-R\n20", int32(1))
	f.Add("cache", int32(1), int32(64), int32(1), uint16(featureAuth|featureNetworkPolicy|featurePlatformUID), "-o\nhashpower=20", int32(0))
	f.Add("monitored", int32(2), int32(128), int32(0), uint16(featureMonitoring|featureTLS|featureNetworkPolicy|featurePDBPercent), "-B\nascii", int32(50))
	f.Add("x", int32(0), int32(1), int32(0), uint16(featureStatefulSet|featureDrainingStatefulSet|featureRetire|featurePodLabels), "-M", int32(2))
	f.Fuzz(func(t *testing.T, name string, size, memoryMB, verbosity int32, features uint16, extraArgs string, pdb int32) {
		mc, in := fuzzSpec{name: name, size: size, memoryMB: memoryMB, verbosity: verbosity,
			features: features, extraArgs: extraArgs, pdb: pdb}.memcached()
		before := mc.DeepCopy()
		d := Build(mc, in)
		if !reflect.DeepEqual(mc, before) {
			t.Fatalf("Build changed the Memcached")
		}
		if again := Build(mc, in); !reflect.DeepEqual(d, again) {
			t.Fatalf("Build is not deterministic")
		}
		checkDesired(t, mc, in, d)
	})
}

// checkDesired checks what the operator guarantees of every set of objects
// it applies.
func checkDesired(t *testing.T, mc *cachev1alpha1.Memcached, in Inputs, d Desired) {
	t.Helper()
	refs := map[string]bool{}
	for _, o := range d.Objects {
		ref := o.Ref().String()
		if refs[ref] {
			t.Errorf("%s is applied twice", ref)
		}
		refs[ref] = true
		if o.GetNamespace() != mc.Namespace {
			t.Errorf("%s is in namespace %q", ref, o.GetNamespace())
		}
		if owners := o.GetOwnerReferences(); len(owners) != 1 || owners[0].UID != mc.UID || !ptr.Deref(owners[0].Controller, false) {
			t.Errorf("%s is not controlled by the Memcached: %+v", ref, owners)
		}
		if !IsManagedBy(o.GetLabels(), mc.Name) {
			t.Errorf("%s has labels %v", ref, o.GetLabels())
		}
		for k, v := range o.GetLabels() {
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				t.Errorf("%s has label %s=%q: %v", ref, k, v, errs)
			}
		}
		if errs := validation.IsDNS1123Subdomain(o.GetName()); len(errs) > 0 {
			t.Errorf("%s has an invalid name: %v", ref, errs)
		}
		if got, want := contentHash(o.Object), hashOf(o.Object); got != want {
			t.Errorf("%s: contentHash = %s, json.Marshal's digest %s", ref, got, want)
		}
		switch o.Kind {
		case ServiceKind:
			checkService(t, mc, o)
		case DeploymentKind, StatefulSetKind:
			checkWorkload(t, mc, in, o)
		}
	}
	for _, r := range d.Absent {
		if refs[r.String()] {
			t.Errorf("%s is both applied and deleted", r)
		}
	}
	workloads := 0
	for _, kind := range []Kind{DeploymentKind, StatefulSetKind} {
		if refs[kind.Kind+" "+mc.Name] {
			workloads++
		}
	}
	if workloads != 1 {
		t.Errorf("%d workloads are applied, want 1", workloads)
	}
}

func checkService(t *testing.T, mc *cachev1alpha1.Memcached, o Object) {
	t.Helper()
	svc := decode[corev1.Service](t, o)
	if errs := validation.IsDNS1035Label(svc.Name); len(errs) > 0 {
		t.Errorf("Service %s: invalid name: %v", svc.Name, errs)
	}
	if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service %s is of type %s: memcached must not be exposed outside the cluster", svc.Name, svc.Spec.Type)
	}
	for _, p := range svc.Spec.Ports {
		if p.Protocol != corev1.ProtocolTCP {
			t.Errorf("Service %s port %s has protocol %s", svc.Name, p.Name, p.Protocol)
		}
		want := int32(memcached.Port)
		if svc.Name == ExporterName(mc) {
			want = MetricsPort
		}
		if p.Port != want {
			t.Errorf("Service %s port %s is %d, want %d", svc.Name, p.Name, p.Port, want)
		}
	}
}

func checkWorkload(t *testing.T, mc *cachev1alpha1.Memcached, in Inputs, o Object) {
	t.Helper()
	var (
		template *corev1.PodTemplateSpec
		selector map[string]string
		replicas int32
		want     int32
	)
	switch o.Kind {
	case StatefulSetKind:
		sts := decode[appsv1.StatefulSet](t, o)
		template, selector, replicas, want = &sts.Spec.Template, sts.Spec.Selector.MatchLabels, ptr.Deref(sts.Spec.Replicas, -1), in.Servers.StatefulSetReplicas
	default:
		dep := decode[appsv1.Deployment](t, o)
		template, selector, replicas, want = &dep.Spec.Template, dep.Spec.Selector.MatchLabels, ptr.Deref(dep.Spec.Replicas, -1), mc.Spec.Size
		if dep.Name == ExporterName(mc) {
			want = 1
		}
	}
	ref := o.Ref().String()
	if replicas != want {
		t.Errorf("%s runs %d replicas, want %d", ref, replicas, want)
	}
	for k, v := range selector {
		if template.Labels[k] != v {
			t.Errorf("%s: the pod template's labels %v do not match the selector %v", ref, template.Labels, selector)
		}
	}
	checkRestricted(t, ref, &template.Spec, in.PlatformAssignsUID)
	if o.GetName() != mc.Name {
		return
	}

	i := slices.IndexFunc(template.Spec.Containers, func(c corev1.Container) bool { return c.Name == ContainerName })
	if i < 0 {
		t.Fatalf("%s has no %s container", ref, ContainerName)
	}
	c := template.Spec.Containers[i]
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != memcached.Port || c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("%s: the memcached container has ports %+v, want only %d/TCP", ref, c.Ports, memcached.Port)
	}
	if !slices.Equal(c.Args, memcached.Args(&mc.Spec)) {
		t.Errorf("%s: memcached runs with %q, want %q", ref, c.Args, memcached.Args(&mc.Spec))
	}
	if hasTLS := slices.Contains(c.Args, "-Z"); hasTLS != (mc.Spec.TLS != nil) {
		t.Errorf("%s: TLS is %v in %q, want %v", ref, hasTLS, c.Args, mc.Spec.TLS != nil)
	}
	if limit, need := c.Resources.Limits[corev1.ResourceMemory], memcached.MemoryLimit(&mc.Spec); limit.Cmp(need) < 0 {
		t.Errorf("%s: memory limit %s is below the %s memcached needs", ref, limit.String(), need.String())
	}
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	for dir, wanted := range map[string]bool{
		memcached.TLSDir:        mc.Spec.TLS != nil,
		memcached.AuthDir:       mc.Spec.Auth != nil,
		memcached.MemoryFileDir: mc.Spec.WarmRestartEnabled(),
	} {
		if mounts[dir] != wanted {
			t.Errorf("%s: %s is mounted: %v, want %v", ref, dir, mounts[dir], wanted)
		}
	}
}

// checkRestricted checks that a pod passes the restricted Pod Security
// Standard, and leaves the user to the platform when asked to.
func checkRestricted(t *testing.T, ref string, pod *corev1.PodSpec, platformAssignsUID bool) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || psc.SeccompProfile == nil ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: the pod's security context %+v is not restricted", ref, psc)
	}
	if platformAssignsUID && psc != nil && (psc.RunAsUser != nil || psc.FSGroup != nil) {
		t.Errorf("%s: the pod sets its user, which the platform assigns", ref)
	}
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		checkRestrictedContainer(t, ref, &c, platformAssignsUID)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("%s: the pod shares the host's namespaces", ref)
	}
}

// checkRestrictedContainer checks that a container passes the restricted Pod
// Security Standard, with TCP ports only and a memory limit.
func checkRestrictedContainer(t *testing.T, ref string, c *corev1.Container, platformAssignsUID bool) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		ptr.Deref(sc.Privileged, false) {
		t.Errorf("%s: container %s has the security context %+v, which is not restricted", ref, c.Name, sc)
	}
	if platformAssignsUID && sc != nil && sc.RunAsUser != nil {
		t.Errorf("%s: container %s sets its user, which the platform assigns", ref, c.Name)
	}
	for _, p := range c.Ports {
		if p.Protocol != corev1.ProtocolTCP || p.HostPort != 0 {
			t.Errorf("%s: container %s has port %+v", ref, c.Name, p)
		}
	}
	if c.Resources.Limits.Memory().Cmp(resource.MustParse("0")) <= 0 {
		t.Errorf("%s: container %s has no memory limit", ref, c.Name)
	}
}

// decode returns o decoded into T, failing the test when it does not decode.
func decode[T any](t *testing.T, o Object) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
		t.Fatalf("failed to decode %s: %v", o.Ref(), err)
	}
	return out
}
