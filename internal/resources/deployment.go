package resources

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

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

// Deployment returns the Deployment that runs the memcached pods of mc. It has
// the name of mc, spec.size replicas and a pod template that passes the
// restricted Pod Security Standard.
func Deployment(mc *cachev1alpha1.Memcached) *appsv1ac.DeploymentApplyConfiguration {
	return appsv1ac.Deployment(mc.Name, mc.Namespace).
		WithLabels(Labels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(mc.Spec.Size).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(mc))).
			WithTemplate(podTemplate(mc)))
}

func podTemplate(mc *cachev1alpha1.Memcached) *corev1ac.PodTemplateSpecApplyConfiguration {
	spec := &mc.Spec
	podSpec := corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(memcachedUID).
			WithRunAsGroup(memcachedUID).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithContainers(corev1ac.Container().
			WithName(ContainerName).
			WithImage(image(spec)).
			WithCommand("memcached").
			WithArgs(memcached.Args(spec)...).
			WithPorts(corev1ac.ContainerPort().
				WithName(PortName).
				WithContainerPort(memcached.Port).
				WithProtocol(corev1.ProtocolTCP)).
			WithResources(convert[corev1ac.ResourceRequirementsApplyConfiguration](containerResources(spec))).
			WithSecurityContext(corev1ac.SecurityContext().
				WithAllowPrivilegeEscalation(false).
				WithReadOnlyRootFilesystem(true).
				WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))))

	if len(spec.NodeSelector) > 0 {
		podSpec.WithNodeSelector(spec.NodeSelector)
	}
	for i := range spec.Tolerations {
		podSpec.WithTolerations(convert[corev1ac.TolerationApplyConfiguration](&spec.Tolerations[i]))
	}
	if spec.Affinity != nil {
		podSpec.WithAffinity(convert[corev1ac.AffinityApplyConfiguration](spec.Affinity))
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
	return template
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
