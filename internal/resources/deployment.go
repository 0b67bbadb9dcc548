package resources

import (
	corev1 "k8s.io/api/core/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

const (
	// Image is the memcached image the pods run.
	Image = "memcached:1.6.39-alpine"

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
	return corev1ac.PodTemplateSpec().
		WithLabels(Labels(mc)).
		WithSpec(corev1ac.PodSpec().
			WithAutomountServiceAccountToken(false).
			WithSecurityContext(corev1ac.PodSecurityContext().
				WithRunAsNonRoot(true).
				WithRunAsUser(memcachedUID).
				WithRunAsGroup(memcachedUID).
				WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
			WithContainers(corev1ac.Container().
				WithName(ContainerName).
				WithImage(Image).
				WithCommand("memcached").
				WithArgs(memcached.Args()...).
				WithPorts(corev1ac.ContainerPort().
					WithName(PortName).
					WithContainerPort(memcached.Port).
					WithProtocol(corev1.ProtocolTCP)).
				WithSecurityContext(corev1ac.SecurityContext().
					WithAllowPrivilegeEscalation(false).
					WithReadOnlyRootFilesystem(true).
					WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")))))
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
