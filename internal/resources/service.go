package resources

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// Service returns the ClusterIP Service of mc, named after it: one stable
// address in front of every ready memcached pod.
// With monitoring enabled, it also serves the exporters' metrics port.
func Service(mc *cachev1alpha1.Memcached) *corev1ac.ServiceApplyConfiguration {
	spec := serviceSpec(mc).WithType(corev1.ServiceTypeClusterIP)
	if monitoringEnabled(mc) {
		spec.WithPorts(corev1ac.ServicePort().
			WithName(MetricsPortName).
			WithPort(MetricsPort).
			WithTargetPort(intstr.FromString(MetricsPortName)).
			WithProtocol(corev1.ProtocolTCP))
	}
	return service(mc, mc.Name).WithSpec(spec)
}

// HeadlessServiceName returns the name of the headless Service of mc.
func HeadlessServiceName(mc *cachev1alpha1.Memcached) string {
	return mc.Name + "-headless"
}

// HeadlessService returns the headless Service of mc: DNS records for each
// ready memcached pod, for clients that shard keys across the pods.
func HeadlessService(mc *cachev1alpha1.Memcached) *corev1ac.ServiceApplyConfiguration {
	return service(mc, HeadlessServiceName(mc)).
		WithSpec(serviceSpec(mc).WithClusterIP(corev1.ClusterIPNone))
}

func service(mc *cachev1alpha1.Memcached, name string) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(name, mc.Namespace).
		WithLabels(Labels(mc)).
		WithOwnerReferences(ownerReference(mc))
}

func serviceSpec(mc *cachev1alpha1.Memcached) *corev1ac.ServiceSpecApplyConfiguration {
	return corev1ac.ServiceSpec().
		WithSelector(SelectorLabels(mc)).
		WithPorts(corev1ac.ServicePort().
			WithName(PortName).
			WithPort(memcached.Port).
			WithTargetPort(intstr.FromString(PortName)).
			WithProtocol(corev1.ProtocolTCP))
}
