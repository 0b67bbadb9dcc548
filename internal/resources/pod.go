package resources

import (
	"cmp"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

const (
	// DefaultImage is the memcached image the pods run unless spec.image or
	// the operator's Images say otherwise.
	DefaultImage = "docker.io/library/memcached:1.6.39-alpine"

	// ContainerName is the name of the memcached container.
	ContainerName = "memcached"
	// AuthContainerName is the name of the init container that renders the
	// auth file.
	AuthContainerName = "render-auth"

	// PortName names the memcached port on containers and Services.
	PortName = "memcached"

	// DefaultUID is the uid and gid of the memcache user in the official
	// image, which names its user but not its uid.
	DefaultUID = 11211
)

// Names of the pod's volumes.
const (
	usersVolume      = "users"
	authVolume       = "auth"
	tlsVolume        = "tls"
	clientCAVolume   = "client-ca"
	memoryFileVolume = "memory-file"
)

// The init container that renders the auth file, and the volume it writes
// it to, need little.
var (
	authContainerMemory = resource.MustParse("16Mi")
	authVolumeSize      = resource.MustParse("1Mi")
)

// secretFileMode lets the pod's group, memcached's, read mounted Secrets, and
// nobody else.
const secretFileMode = 0o440

// podTemplate returns the pod template of the memcached pods of mc.
func podTemplate(mc *cachev1alpha1.Memcached, in Inputs) *corev1ac.PodTemplateSpecApplyConfiguration {
	spec := &mc.Spec
	container := corev1ac.Container().
		WithName(ContainerName).
		WithImage(image(spec, in)).
		WithPorts(corev1ac.ContainerPort().
			WithName(PortName).
			WithContainerPort(memcached.Port).
			WithProtocol(corev1.ProtocolTCP)).
		WithResources(convert[corev1ac.ResourceRequirementsApplyConfiguration](containerResources(spec))).
		WithReadinessProbe(tcpProbe(PortName).WithPeriodSeconds(5).WithFailureThreshold(2)).
		WithLivenessProbe(tcpProbe(PortName).WithPeriodSeconds(10).WithFailureThreshold(3)).
		WithSecurityContext(restrictedContainer())
	delay := ptr.Deref(spec.PreStopDelaySeconds, 0)
	if spec.WarmRestartEnabled() {
		// memcached saves its memory file on SIGUSR1 only; a script waits
		// for the file to be readable before starting it.
		container.
			WithCommand("/bin/sh", "-c", memcached.StartScript(), "memcached").
			WithArgs(memcached.Args(spec)...).
			WithEnv(corev1ac.EnvVar().WithName(memcached.ImageEnv).WithValue(image(spec, in))).
			WithVolumeMounts(corev1ac.VolumeMount().WithName(memoryFileVolume).WithMountPath(memcached.MemoryFileDir)).
			WithLifecycle(corev1ac.Lifecycle().WithPreStop(corev1ac.LifecycleHandler().
				WithExec(corev1ac.ExecAction().WithCommand("/bin/sh", "-c", memcached.StopScript(delay)))))
	} else {
		container.WithCommand("memcached").WithArgs(memcached.Args(spec)...)
		if spec.ExtstoreEnabled() && spec.GetWorkload() == cachev1alpha1.WorkloadStatefulSet {
			// The volume of the StatefulSet's claim template: memcached
			// creates its file there, and empties it when it starts.
			container.WithVolumeMounts(corev1ac.VolumeMount().
				WithName(ClaimTemplate(mc, in)).WithMountPath(memcached.ExtstoreDir))
		}
		if delay > 0 {
			container.WithLifecycle(corev1ac.Lifecycle().
				WithPreStop(corev1ac.LifecycleHandler().WithSleep(corev1ac.SleepAction().WithSeconds(int64(delay)))))
		}
	}

	podSpec := corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false).
		WithSecurityContext(podSecurityContext(in)).
		WithAffinity(affinity(mc)).
		WithTopologySpreadConstraints(topologySpreadConstraints(mc)...)
	if spec.TerminationGracePeriodSeconds != nil {
		podSpec.WithTerminationGracePeriodSeconds(*spec.TerminationGracePeriodSeconds)
	}

	annotations := map[string]string{}
	if spec.Auth != nil {
		// An init container renders the auth file from the Secret into a
		// volume in memory: the operator writes no Secret.
		podSpec.WithInitContainers(corev1ac.Container().
			WithName(AuthContainerName).
			WithImage(image(spec, in)).
			WithCommand("/bin/sh", "-c", memcached.AuthScript()).
			WithVolumeMounts(
				readOnlyMount(usersVolume, memcached.UsersDir),
				corev1ac.VolumeMount().WithName(authVolume).WithMountPath(memcached.AuthDir)).
			WithResources(corev1ac.ResourceRequirements().
				WithLimits(corev1.ResourceList{corev1.ResourceMemory: authContainerMemory}).
				WithRequests(corev1.ResourceList{corev1.ResourceMemory: authContainerMemory})).
			WithSecurityContext(restrictedContainer()))
		container.WithVolumeMounts(readOnlyMount(authVolume, memcached.AuthDir))
		podSpec.WithVolumes(
			corev1ac.Volume().WithName(usersVolume).WithSecret(corev1ac.SecretVolumeSource().
				WithSecretName(spec.Auth.SecretName).WithDefaultMode(secretFileMode)),
			corev1ac.Volume().WithName(authVolume).WithEmptyDir(corev1ac.EmptyDirVolumeSource().
				WithMedium(corev1.StorageMediumMemory).WithSizeLimit(authVolumeSize)))
		annotations[AuthDigestAnnotation] = in.Digests.Auth
	}
	if spec.TLS != nil {
		container.WithVolumeMounts(readOnlyMount(tlsVolume, memcached.TLSDir))
		podSpec.WithVolumes(secretVolume(tlsVolume, spec.TLS.SecretName, corev1.TLSCertKey, corev1.TLSPrivateKeyKey))
		if spec.TLS.ClientCASecretName != "" {
			container.WithVolumeMounts(readOnlyMount(clientCAVolume, memcached.ClientCADir))
			podSpec.WithVolumes(secretVolume(clientCAVolume, spec.TLS.ClientCASecretName, memcached.ClientCAKey))
		}
		annotations[TLSDigestAnnotation] = in.Digests.TLS
	}
	podSpec.WithContainers(container)

	withNodePlacement(podSpec, spec)
	withImagePullSecrets(podSpec, spec)
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

// podSecurityContext runs the pod as a non-root user: DefaultUID, the
// official image's, unless the platform assigns one (in.PlatformAssignsUID),
// as OpenShift's restricted-v2 does.
func podSecurityContext(in Inputs) *corev1ac.PodSecurityContextApplyConfiguration {
	sc := corev1ac.PodSecurityContext().
		WithRunAsNonRoot(true).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
	if !in.PlatformAssignsUID {
		sc.WithRunAsUser(DefaultUID).WithRunAsGroup(DefaultUID).WithFSGroup(DefaultUID)
	}
	return sc
}

// restrictedContainer is the security context of every container of the
// operator's pods, as the restricted Pod Security Standard asks.
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

// withNodePlacement gives podSpec the nodes and priority spec asks for:
// its node selector, tolerations and priority class. The memcached pods and
// the exporter's share them.
func withNodePlacement(podSpec *corev1ac.PodSpecApplyConfiguration, spec *cachev1alpha1.MemcachedSpec) {
	if len(spec.NodeSelector) > 0 {
		podSpec.WithNodeSelector(spec.NodeSelector)
	}
	for i := range spec.Tolerations {
		podSpec.WithTolerations(convert[corev1ac.TolerationApplyConfiguration](&spec.Tolerations[i]))
	}
	if spec.PriorityClassName != "" {
		podSpec.WithPriorityClassName(spec.PriorityClassName)
	}
}

// withImagePullSecrets gives podSpec the Secrets spec pulls its images with.
// The memcached pods and the exporter's share them.
func withImagePullSecrets(podSpec *corev1ac.PodSpecApplyConfiguration, spec *cachev1alpha1.MemcachedSpec) {
	for _, secret := range spec.ImagePullSecrets {
		podSpec.WithImagePullSecrets(corev1ac.LocalObjectReference().WithName(secret.Name))
	}
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
// cluster of one zone. With a Deployment, the pods of one template are
// counted together, so that a rollout does not skew the spread.
func topologySpreadConstraints(mc *cachev1alpha1.Memcached) []*corev1ac.TopologySpreadConstraintApplyConfiguration {
	var constraints []*corev1ac.TopologySpreadConstraintApplyConfiguration
	if mc.Spec.TopologySpreadConstraints != nil {
		for i := range mc.Spec.TopologySpreadConstraints {
			constraints = append(constraints,
				convert[corev1ac.TopologySpreadConstraintApplyConfiguration](&mc.Spec.TopologySpreadConstraints[i]))
		}
		return constraints
	}
	zones := corev1ac.TopologySpreadConstraint().
		WithMaxSkew(1).
		WithTopologyKey(corev1.LabelTopologyZone).
		WithWhenUnsatisfiable(corev1.ScheduleAnyway).
		WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(mc)))
	if mc.Spec.GetWorkload() == cachev1alpha1.WorkloadDeployment {
		zones.WithMatchLabelKeys(appsv1.DefaultDeploymentUniqueLabelKey)
	}
	return append(constraints, zones)
}

// image returns the memcached image of spec: its own, or the operator's
// default.
func image(spec *cachev1alpha1.MemcachedSpec, in Inputs) string {
	return cmp.Or(spec.Image, in.Images.Memcached, DefaultImage)
}

// DefaultCPURequest is the memcached container's CPU request when the spec
// gives neither a CPU request nor a CPU limit. A namespace with a
// ResourceQuota on requests.cpu refuses pods that request no CPU. memcached's
// CPU use follows its traffic, not its threads (spec.threads is how many
// cores it may use at most, and an idle cache uses almost none), so the
// default is a small fixed share that reserves little on the node and leaves
// the rest to the spec; there is no CPU limit by default, so a busy cache is
// not throttled.
const DefaultCPURequest = "50m"

// containerResources returns spec.resources with the memory limit, when
// missing, derived from memoryMB, the memory request, when missing, equal to
// the limit, and the CPU request, when missing, equal to the CPU limit if the
// spec gives one (as Kubernetes would default it) or DefaultCPURequest.
func containerResources(spec *cachev1alpha1.MemcachedSpec) *corev1.ResourceRequirements {
	resources := &corev1.ResourceRequirements{}
	if spec.Resources != nil {
		resources.Limits = spec.Resources.Limits.DeepCopy()
		resources.Requests = spec.Resources.Requests.DeepCopy()
	}
	if resources.Limits == nil {
		resources.Limits = corev1.ResourceList{}
	}
	if resources.Requests == nil {
		resources.Requests = corev1.ResourceList{}
	}
	if _, ok := resources.Limits[corev1.ResourceMemory]; !ok {
		// What memcached needs, or the request if larger: a limit may not
		// be below the request.
		limit := memcached.MemoryLimit(spec)
		if request, ok := resources.Requests[corev1.ResourceMemory]; ok && request.Cmp(limit) > 0 {
			limit = request
		}
		resources.Limits[corev1.ResourceMemory] = limit
	}
	if _, ok := resources.Requests[corev1.ResourceMemory]; !ok {
		resources.Requests[corev1.ResourceMemory] = resources.Limits[corev1.ResourceMemory]
	}
	if _, ok := resources.Requests[corev1.ResourceCPU]; !ok {
		if limit, ok := resources.Limits[corev1.ResourceCPU]; ok {
			resources.Requests[corev1.ResourceCPU] = limit
		} else {
			resources.Requests[corev1.ResourceCPU] = resource.MustParse(DefaultCPURequest)
		}
	}
	return resources
}

// resourceRequirements returns r as an apply configuration that holds only
// the lists r has: an empty one applied would be a field the operator owns
// for nothing.
func resourceRequirements(r *cachev1alpha1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	out := corev1ac.ResourceRequirements()
	if len(r.Limits) > 0 {
		out.WithLimits(r.Limits)
	}
	if len(r.Requests) > 0 {
		out.WithRequests(r.Requests)
	}
	return out
}
