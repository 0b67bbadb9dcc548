package resources

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

const (
	// DefaultImage is the memcached image the pods run unless spec.image says
	// otherwise; the CRD defaults spec.image to it.
	DefaultImage = "memcached:1.6.39-alpine"

	// ContainerName is the name of the memcached container.
	ContainerName = "memcached"

	// PortName names the memcached port on containers and Services.
	PortName = "memcached"

	// memcachedUID is the uid of the memcache user in the official image.
	memcachedUID = 11211
)

// Annotations of the pod template that change when a Secret the pods read
// changes, so that the Deployment replaces the pods.
const (
	AuthHashAnnotation = "cache.example.com/auth-hash"
	TLSHashAnnotation  = "cache.example.com/tls-hash"
)

// SecretHashes are digests of the Secret contents the memcached pods read,
// empty for what spec does not ask for.
type SecretHashes struct {
	// Auth is the digest of the rendered auth file.
	Auth string
	// TLS is the digest of the certificate, key and client CA.
	TLS string
}

// Deployment returns the Deployment that runs the memcached pods of mc. It has
// the name of mc, spec.size replicas and a pod template that passes the
// restricted Pod Security Standard.
func Deployment(mc *cachev1alpha1.Memcached, hashes SecretHashes) *appsv1ac.DeploymentApplyConfiguration {
	return appsv1ac.Deployment(mc.Name, mc.Namespace).
		WithLabels(Labels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(mc.Spec.Size).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(mc))).
			WithTemplate(podTemplate(mc, hashes)))
}

// Names of the pod's volumes.
const (
	authVolume     = "auth"
	tlsVolume      = "tls"
	clientCAVolume = "client-ca"
)

// secretFileMode lets the pod's group, memcached's, read mounted Secrets, and
// nobody else.
const secretFileMode = 0o440

func podTemplate(mc *cachev1alpha1.Memcached, hashes SecretHashes) *corev1ac.PodTemplateSpecApplyConfiguration {
	spec := &mc.Spec
	container := corev1ac.Container().
		WithName(ContainerName).
		WithImage(image(spec)).
		WithCommand("memcached").
		WithArgs(memcached.Args(spec)...).
		WithPorts(corev1ac.ContainerPort().
			WithName(PortName).
			WithContainerPort(memcached.Port).
			WithProtocol(corev1.ProtocolTCP)).
		WithResources(convert[corev1ac.ResourceRequirementsApplyConfiguration](containerResources(spec))).
		WithReadinessProbe(tcpProbe(PortName).WithPeriodSeconds(5).WithFailureThreshold(2)).
		WithLivenessProbe(tcpProbe(PortName).WithPeriodSeconds(10).WithFailureThreshold(3)).
		WithSecurityContext(restrictedContainer())
	if delay := ptr.Deref(spec.PreStopDelaySeconds, 0); delay > 0 {
		container.WithLifecycle(corev1ac.Lifecycle().
			WithPreStop(corev1ac.LifecycleHandler().WithSleep(corev1ac.SleepAction().WithSeconds(int64(delay)))))
	}

	podSpec := corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(memcachedUID).
			WithRunAsGroup(memcachedUID).
			WithFSGroup(memcachedUID).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithAffinity(affinity(mc)).
		WithTopologySpreadConstraints(topologySpreadConstraints(mc)...)
	if spec.TerminationGracePeriodSeconds != nil {
		podSpec.WithTerminationGracePeriodSeconds(*spec.TerminationGracePeriodSeconds)
	}

	annotations := map[string]string{}
	if spec.Auth != nil {
		container.WithVolumeMounts(readOnlyMount(authVolume, memcached.AuthDir))
		podSpec.WithVolumes(secretVolume(authVolume, AuthSecretName(mc), memcached.AuthFileKey))
		annotations[AuthHashAnnotation] = hashes.Auth
	}
	if spec.TLS != nil {
		container.WithVolumeMounts(readOnlyMount(tlsVolume, memcached.TLSDir))
		podSpec.WithVolumes(secretVolume(tlsVolume, spec.TLS.SecretName, corev1.TLSCertKey, corev1.TLSPrivateKeyKey))
		if spec.TLS.ClientCASecretName != "" {
			container.WithVolumeMounts(readOnlyMount(clientCAVolume, memcached.ClientCADir))
			podSpec.WithVolumes(secretVolume(clientCAVolume, spec.TLS.ClientCASecretName, memcached.ClientCAKey))
		}
		annotations[TLSHashAnnotation] = hashes.TLS
	}
	podSpec.WithContainers(container)
	if exporter := exporterContainer(mc); exporter != nil {
		podSpec.WithContainers(exporter)
	}

	if len(spec.NodeSelector) > 0 {
		podSpec.WithNodeSelector(spec.NodeSelector)
	}
	for i := range spec.Tolerations {
		podSpec.WithTolerations(convert[corev1ac.TolerationApplyConfiguration](&spec.Tolerations[i]))
	}
	if spec.PriorityClassName != "" {
		podSpec.WithPriorityClassName(spec.PriorityClassName)
	}
	template := corev1ac.PodTemplateSpec().
		WithLabels(spec.PodLabels).
		WithLabels(Labels(mc)).
		WithSpec(podSpec)
	if len(spec.PodAnnotations) > 0 {
		template.WithAnnotations(spec.PodAnnotations)
	}
	if len(annotations) > 0 {
		template.WithAnnotations(annotations)
	}
	return template
}

// restrictedContainer is the security context of every container of the
// memcached pods, as the restricted Pod Security Standard asks.
func restrictedContainer() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithAllowPrivilegeEscalation(false).
		WithReadOnlyRootFilesystem(true).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))
}

func tcpProbe(port string) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().WithTCPSocket(corev1ac.TCPSocketAction().WithPort(intstr.FromString(port)))
}

func readOnlyMount(volume, dir string) *corev1ac.VolumeMountApplyConfiguration {
	return corev1ac.VolumeMount().WithName(volume).WithMountPath(dir).WithReadOnly(true)
}

// secretVolume mounts the given keys of a Secret, readable by the pod's group only.
func secretVolume(volume, secret string, keys ...string) *corev1ac.VolumeApplyConfiguration {
	source := corev1ac.SecretVolumeSource().WithSecretName(secret).WithDefaultMode(secretFileMode)
	for _, key := range keys {
		source.WithItems(corev1ac.KeyToPath().WithKey(key).WithPath(key))
	}
	return corev1ac.Volume().WithName(volume).WithSecret(source)
}

// affinity returns spec.affinity when set, an empty one included. Otherwise it
// prefers to put each memcached pod on a node of its own, so that losing a
// node loses as little of the cache as possible.
func affinity(mc *cachev1alpha1.Memcached) *corev1ac.AffinityApplyConfiguration {
	if a := mc.Spec.Affinity; a != nil {
		if a.NodeAffinity == nil && a.PodAffinity == nil && a.PodAntiAffinity == nil {
			return nil
		}
		return convert[corev1ac.AffinityApplyConfiguration](a)
	}
	return corev1ac.Affinity().WithPodAntiAffinity(corev1ac.PodAntiAffinity().
		WithPreferredDuringSchedulingIgnoredDuringExecution(corev1ac.WeightedPodAffinityTerm().
			WithWeight(100).
			WithPodAffinityTerm(corev1ac.PodAffinityTerm().
				WithTopologyKey(corev1.LabelHostname).
				WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(mc))))))
}

// topologySpreadConstraints returns spec.topologySpreadConstraints when set,
// an empty list included. Otherwise it spreads the memcached pods evenly over
// zones where it can, and schedules them anyway where it cannot, e.g. in a
// cluster of one zone. Pods of one template are counted together, so that a
// rollout does not skew the spread.
func topologySpreadConstraints(mc *cachev1alpha1.Memcached) []*corev1ac.TopologySpreadConstraintApplyConfiguration {
	var constraints []*corev1ac.TopologySpreadConstraintApplyConfiguration
	if mc.Spec.TopologySpreadConstraints != nil {
		for i := range mc.Spec.TopologySpreadConstraints {
			constraints = append(constraints,
				convert[corev1ac.TopologySpreadConstraintApplyConfiguration](&mc.Spec.TopologySpreadConstraints[i]))
		}
		return constraints
	}
	return append(constraints, corev1ac.TopologySpreadConstraint().
		WithMaxSkew(1).
		WithTopologyKey(corev1.LabelTopologyZone).
		WithWhenUnsatisfiable(corev1.ScheduleAnyway).
		WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(mc))).
		WithMatchLabelKeys(appsv1.DefaultDeploymentUniqueLabelKey))
}

func image(spec *cachev1alpha1.MemcachedSpec) string {
	if spec.Image == "" {
		return DefaultImage
	}
	return spec.Image
}

// containerResources returns spec.resources with the memory limit, when
// missing, derived from memoryMB, and the memory request, when missing, equal
// to the limit.
func containerResources(spec *cachev1alpha1.MemcachedSpec) *corev1.ResourceRequirements {
	resources := &corev1.ResourceRequirements{}
	if spec.Resources != nil {
		resources = spec.Resources.DeepCopy()
	}
	if resources.Limits == nil {
		resources.Limits = corev1.ResourceList{}
	}
	if resources.Requests == nil {
		resources.Requests = corev1.ResourceList{}
	}
	if _, ok := resources.Limits[corev1.ResourceMemory]; !ok {
		resources.Limits[corev1.ResourceMemory] = memcached.MemoryLimit(spec)
	}
	if _, ok := resources.Requests[corev1.ResourceMemory]; !ok {
		resources.Requests[corev1.ResourceMemory] = resources.Limits[corev1.ResourceMemory]
	}
	return resources
}

// convert turns an API value into the apply configuration of the same type:
// both have the same JSON form. It panics if they do not, a programming error.
func convert[T any](in any) *T {
	data, err := json.Marshal(in)
	if err != nil {
		panic(fmt.Sprintf("failed to encode %T: %v", in, err))
	}
	out := new(T)
	if err := json.Unmarshal(data, out); err != nil {
		panic(fmt.Sprintf("failed to decode %T into %T: %v", in, out, err))
	}
	return out
}

// ownerReference makes mc the controller of an object, so that deleting mc
// garbage-collects the object.
func ownerReference(mc *cachev1alpha1.Memcached) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(cachev1alpha1.GroupVersion.String()).
		WithKind("Memcached").
		WithName(mc.Name).
		WithUID(mc.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}
