package resources

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// DiscoveryComponent is the value of ComponentLabel on the headless Service,
// which ServiceMonitors and clients discover the memcached pods through.
const DiscoveryComponent = "discovery"

// service returns the ClusterIP Service of mc, named after it: one stable
// address in front of every ready memcached pod or, with spec.proxy, in
// front of the proxies, so that a client with one address reaches the whole
// cache. It selects the proxies once one is ready (proxiesReady), so that
// turning them on never leaves the Service without endpoints, even when they
// cannot start.
func service(mc *cachev1alpha1.Memcached, proxiesReady bool) *corev1ac.ServiceApplyConfiguration {
	spec := memcachedServiceSpec(mc).WithType(corev1.ServiceTypeClusterIP)
	if mc.Spec.ProxyEnabled() && proxiesReady {
		spec.Selector = ProxySelectorLabels(mc)
	}
	return corev1ac.Service(mc.Name, mc.Namespace).
		WithLabels(Labels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(spec)
}

// HeadlessServiceName returns the name of the headless Service of mc.
func HeadlessServiceName(mc *cachev1alpha1.Memcached) string {
	return mc.Name + "-headless"
}

// headlessService returns the headless Service of mc: a DNS record for each
// memcached pod, and SRV records _memcached._tcp.<name>-headless for
// clients that discover the pods by DNS. It lists pods that are not ready
// too, so that a pod restarting does not drop out of the clients' server
// list and move keys; a StatefulSet's pods get their stable DNS names from it.
func headlessService(mc *cachev1alpha1.Memcached) *corev1ac.ServiceApplyConfiguration {
	labels := Labels(mc)
	labels[ComponentLabel] = DiscoveryComponent
	return corev1ac.Service(HeadlessServiceName(mc), mc.Namespace).
		WithLabels(labels).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(memcachedServiceSpec(mc).
			WithClusterIP(corev1.ClusterIPNone).
			WithPublishNotReadyAddresses(true))
}

func memcachedServiceSpec(mc *cachev1alpha1.Memcached) *corev1ac.ServiceSpecApplyConfiguration {
	return corev1ac.ServiceSpec().
		WithSelector(SelectorLabels(mc)).
		WithPorts(corev1ac.ServicePort().
			WithName(PortName).
			WithPort(memcached.Port).
			WithTargetPort(intstr.FromString(PortName)).
			WithProtocol(corev1.ProtocolTCP))
}

// ServersConfigMapName returns the name of the ConfigMap that publishes the
// server list of mc.
func ServersConfigMapName(mc *cachev1alpha1.Memcached) string {
	return mc.Name + "-servers"
}

// Keys of the servers ConfigMap.
const (
	// ServersKey holds the server list, one server per line.
	ServersKey = "servers"
	// ServersCSVKey holds the server list, separated by commas.
	ServersCSVKey = "servers.csv"
)

// serversConfigMap returns the ConfigMap that publishes status.serverList
// for clients that read their servers from a file.
func serversConfigMap(mc *cachev1alpha1.Memcached, servers []string) *corev1ac.ConfigMapApplyConfiguration {
	data := map[string]string{ServersKey: "", ServersCSVKey: ""}
	for i, s := range servers {
		data[ServersKey] += s + "\n"
		if i > 0 {
			data[ServersCSVKey] += ","
		}
		data[ServersCSVKey] += s
	}
	return corev1ac.ConfigMap(ServersConfigMapName(mc), mc.Namespace).
		WithLabels(maps.Clone(Labels(mc))).
		WithOwnerReferences(ownerReference(mc)).
		WithData(data)
}
