package resources

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// ProgressDeadlineSeconds is how long a Deployment rollout may go without
// progress, beyond spec.minReadySeconds, before the Deployment, and so the
// Memcached, reports it stuck.
const ProgressDeadlineSeconds = 60

// MemoryFileClaim names the volume claim template of the memory files of
// spec.warmRestart.
const MemoryFileClaim = memoryFileVolume

// deployment returns the Deployment that runs the memcached pods of mc. A
// rollout adds a new pod before it removes an old one, and moves on only once
// the new pod has been ready for minReadySeconds: a template that cannot run
// never takes a serving pod away.
func deployment(mc *cachev1alpha1.Memcached, in Inputs) *appsv1ac.DeploymentApplyConfiguration {
	template, hash := hashedPodTemplate(mc, in)
	return appsv1ac.Deployment(mc.Name, mc.Namespace).
		WithLabels(Labels(mc)).
		WithAnnotations(map[string]string{TemplateHashAnnotation: hash}).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(mc.Spec.Size).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(mc))).
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType(appsv1.RollingUpdateDeploymentStrategyType).
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxSurge(intstr.FromInt32(1)).
					WithMaxUnavailable(intstr.FromInt32(0)))).
			WithMinReadySeconds(ptr.Deref(mc.Spec.MinReadySeconds, 0)).
			WithProgressDeadlineSeconds(ProgressDeadlineSeconds + ptr.Deref(mc.Spec.MinReadySeconds, 0)).
			WithTemplate(template))
}

// statefulSet returns the StatefulSet that runs the memcached pods of mc with
// stable identities: pods <name>-0 ... <name>-(replicas-1), with DNS names
// under the headless Service, started and stopped in parallel. A rollout
// replaces one pod at a time, the highest ordinal first, and moves on once
// the new pod has been ready for minReadySeconds. With warm restart, each pod
// has a volume of its own for its memory file, and with extstore one for its
// flash tier, deleted with the pod when a scale-down removes it (its
// contents would be stale if the pod came back).
func statefulSet(mc *cachev1alpha1.Memcached, in Inputs) *appsv1ac.StatefulSetApplyConfiguration {
	template, hash := hashedPodTemplate(mc, in)
	spec := appsv1ac.StatefulSetSpec().
		WithReplicas(in.Servers.StatefulSetReplicas).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(mc))).
		WithServiceName(HeadlessServiceName(mc)).
		WithPodManagementPolicy(appsv1.ParallelPodManagement).
		WithUpdateStrategy(appsv1ac.StatefulSetUpdateStrategy().
			WithType(appsv1.RollingUpdateStatefulSetStrategyType).
			WithRollingUpdate(appsv1ac.RollingUpdateStatefulSetStrategy().
				WithMaxUnavailable(intstr.FromInt32(1)))).
		WithMinReadySeconds(ptr.Deref(mc.Spec.MinReadySeconds, 0)).
		WithTemplate(template)
	switch claim := ClaimTemplate(mc, in); claim {
	case "":
	case MemoryFileClaim:
		withVolumeClaim(mc, spec, claim, memcached.MemoryFileSize(&mc.Spec), mc.Spec.WarmRestart.StorageClassName)
	default:
		withVolumeClaim(mc, spec, claim, memcached.ExtstoreVolumeSize(&mc.Spec), mc.Spec.Extstore.StorageClassName)
	}
	return appsv1ac.StatefulSet(mc.Name, mc.Namespace).
		WithLabels(Labels(mc)).
		WithAnnotations(map[string]string{TemplateHashAnnotation: hash}).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(spec)
}

// ClaimTemplate returns the name of the volume claim template of the
// StatefulSet of mc, which is also the name of the volume in each pod: the
// memory file's with warm restart, the flash tier's with extstore (the name
// of the claims that exist, in.ExtstoreClaim, or one after the size), ""
// when it has none.
func ClaimTemplate(mc *cachev1alpha1.Memcached, in Inputs) string {
	switch {
	case mc.Spec.GetWorkload() != cachev1alpha1.WorkloadStatefulSet:
		return ""
	case mc.Spec.WarmRestartEnabled():
		return MemoryFileClaim
	case mc.Spec.ExtstoreEnabled() && in.ExtstoreClaim != "":
		return in.ExtstoreClaim
	case mc.Spec.ExtstoreEnabled():
		return memcached.ExtstoreClaimName(&mc.Spec)
	}
	return ""
}

// withVolumeClaim gives each pod of spec a PersistentVolumeClaim of its own,
// from the claim template name, of size and class (the cluster's default
// one when nil). A claim goes with its pod when a scale-down removes it, and
// with the StatefulSet: its contents would be stale if the pod came back.
func withVolumeClaim(mc *cachev1alpha1.Memcached, spec *appsv1ac.StatefulSetSpecApplyConfiguration, name string,
	size resource.Quantity, class *string) {
	claim := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(corev1.ReadWriteOnce).
		WithResources(corev1ac.VolumeResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceStorage: size}))
	if class != nil {
		claim.WithStorageClassName(*class)
	}
	spec.WithVolumeClaimTemplates((&corev1ac.PersistentVolumeClaimApplyConfiguration{}).
		WithName(name).
		WithLabels(Labels(mc)).
		WithSpec(claim)).
		WithPersistentVolumeClaimRetentionPolicy(appsv1ac.StatefulSetPersistentVolumeClaimRetentionPolicy().
			WithWhenDeleted(appsv1.DeletePersistentVolumeClaimRetentionPolicyType).
			WithWhenScaled(appsv1.DeletePersistentVolumeClaimRetentionPolicyType))
}

// hashedPodTemplate returns the pod template of mc, annotated with its
// digest, and the digest: a pod tells by it whether it runs the current
// template.
func hashedPodTemplate(mc *cachev1alpha1.Memcached, in Inputs) (*corev1ac.PodTemplateSpecApplyConfiguration, string) {
	template := podTemplate(mc, in)
	hash := hashOf(template)
	return template.WithAnnotations(map[string]string{TemplateHashAnnotation: hash}), hash
}
