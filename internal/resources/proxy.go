package resources

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// The proxy tier of spec.proxy: a Deployment of memcached in proxy mode in
// front of the servers, its routes in a ConfigMap rendered from the server
// list, its own disruption budget and network policy. The Service <name>
// sends clients to it instead of to the servers.

const (
	// ProxyAppName is the value of NameLabel on the proxies and their
	// objects.
	ProxyAppName = "memcached-proxy"
	// ProxyComponent is the value of ComponentLabel on the proxy's objects.
	ProxyComponent = "proxy"
	// ProxyContainerName is the name of the proxy container.
	ProxyContainerName = "proxy"
	// ProxyRoutesDigestAnnotation is the annotation of the proxies' pod
	// template that changes when their routes do, so that a changed server
	// list replaces the proxies, one at a time.
	ProxyRoutesDigestAnnotation = "cache.example.com/proxy-routes-digest"

	proxyRoutesVolume = "routes"

	// ProxyPreStopSeconds is how long a proxy that is asked to stop keeps
	// serving, so that the Service stops sending it connections before it
	// closes those it has.
	ProxyPreStopSeconds = 5
)

// The proxy container's resources when spec.proxy.resources is unset. The
// proxy stores nothing: its memory is its connections' buffers.
var (
	proxyCPURequest    = resource.MustParse("50m")
	proxyMemoryRequest = resource.MustParse("64Mi")
	proxyMemoryLimit   = resource.MustParse("128Mi")
)

// ProxyName returns the name of the proxy's Deployment, ConfigMap,
// PodDisruptionBudget and NetworkPolicy of mc.
func ProxyName(mc *cachev1alpha1.Memcached) string {
	return mc.Name + "-proxy"
}

// ProxySelectorLabels returns the labels that select the proxies of mc.
func ProxySelectorLabels(mc *cachev1alpha1.Memcached) map[string]string {
	return map[string]string{
		NameLabel:     ProxyAppName,
		InstanceLabel: mc.Name,
	}
}

func proxyLabels(mc *cachev1alpha1.Memcached) map[string]string {
	labels := ProxySelectorLabels(mc)
	labels[ManagedByLabel] = ManagerName
	labels[ComponentLabel] = ProxyComponent
	return labels
}

// proxyRoutes renders the proxies' routes from the server list. The list is
// the operator's own (stable names of the StatefulSet's pods, or pod
// addresses while a workload switch is under way), so it always renders.
func proxyRoutes(servers []string) []byte {
	routes, err := memcached.ProxyRoutes(servers)
	if err != nil {
		panic(fmt.Sprintf("failed to render the proxy routes of server list %q: %v", servers, err)) // a programming error
	}
	return routes
}

// proxyConfigMap returns the ConfigMap holding the proxies' routes, nil
// without spec.proxy.
func proxyConfigMap(mc *cachev1alpha1.Memcached, routes []byte) *corev1ac.ConfigMapApplyConfiguration {
	if !mc.Spec.ProxyEnabled() {
		return nil
	}
	return corev1ac.ConfigMap(ProxyName(mc), mc.Namespace).
		WithLabels(proxyLabels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithData(map[string]string{memcached.ProxyRoutesKey: string(routes)})
}

// proxyDeployment returns the Deployment of the proxies, nil without
// spec.proxy. The proxies read their routes at start; the digest of the
// routes in their pod template replaces them when the server list changes,
// a new proxy ready before an old one goes, so that some proxy always serves,
// and an old one serving ProxyPreStopSeconds more while the Service forgets
// it. A reload in place (SIGHUP) is not used: memcached's proxy exits when
// the file it reloads does not load, which would stop every proxy at once.
// They run where the memcached pods may (node selector, tolerations, priority,
// node affinity), spread over the nodes.
func proxyDeployment(mc *cachev1alpha1.Memcached, in Inputs, routes []byte) *appsv1ac.DeploymentApplyConfiguration {
	if !mc.Spec.ProxyEnabled() {
		return nil
	}
	p := mc.Spec.Proxy
	container := corev1ac.Container().
		WithName(ProxyContainerName).
		WithImage(image(&mc.Spec, in)).
		WithCommand("memcached").
		WithArgs(memcached.ProxyArgs(memcached.ProxyOptions{MaxConnections: p.GetMaxConnections()})...).
		WithPorts(corev1ac.ContainerPort().
			WithName(PortName).
			WithContainerPort(memcached.Port).
			WithProtocol(corev1.ProtocolTCP)).
		WithReadinessProbe(tcpProbe(PortName).WithPeriodSeconds(5)).
		WithLivenessProbe(tcpProbe(PortName).WithPeriodSeconds(10).WithFailureThreshold(3)).
		WithLifecycle(corev1ac.Lifecycle().
			WithPreStop(corev1ac.LifecycleHandler().WithSleep(corev1ac.SleepAction().WithSeconds(ProxyPreStopSeconds)))).
		WithVolumeMounts(readOnlyMount(proxyRoutesVolume, memcached.ProxyConfigDir)).
		WithSecurityContext(restrictedContainer())
	if r := p.Resources; r != nil {
		container.WithResources(resourceRequirements(r))
	} else {
		container.WithResources(corev1ac.ResourceRequirements().
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: proxyMemoryLimit}).
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: proxyCPURequest, corev1.ResourceMemory: proxyMemoryRequest}))
	}
	podSpec := corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false).
		WithSecurityContext(podSecurityContext(in)).
		WithContainers(container).
		WithVolumes(corev1ac.Volume().WithName(proxyRoutesVolume).
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(ProxyName(mc)))).
		WithTopologySpreadConstraints(corev1ac.TopologySpreadConstraint().
			WithMaxSkew(1).
			WithTopologyKey(corev1.LabelHostname).
			WithWhenUnsatisfiable(corev1.ScheduleAnyway).
			WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(ProxySelectorLabels(mc))))
	withNodePlacement(podSpec, &mc.Spec)
	withImagePullSecrets(podSpec, &mc.Spec)
	if a := mc.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		podSpec.WithAffinity(corev1ac.Affinity().WithNodeAffinity(convert[corev1ac.NodeAffinityApplyConfiguration](a.NodeAffinity)))
	}
	return appsv1ac.Deployment(ProxyName(mc), mc.Namespace).
		WithLabels(proxyLabels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(p.GetReplicas()).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(ProxySelectorLabels(mc))).
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType(appsv1.RollingUpdateDeploymentStrategyType).
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxSurge(intstr.FromInt32(1)).
					WithMaxUnavailable(intstr.FromInt32(0)))).
			WithProgressDeadlineSeconds(ProgressDeadlineSeconds).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(proxyLabels(mc)).
				WithAnnotations(map[string]string{ProxyRoutesDigestAnnotation: hashOf(string(routes))}).
				WithSpec(podSpec)))
}

// proxyDisruptionBudget returns the PodDisruptionBudget of the proxies: one
// down at a time, nil without spec.proxy or with a single proxy, which a
// budget would only keep a node drain from evicting.
func proxyDisruptionBudget(mc *cachev1alpha1.Memcached) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	if !mc.Spec.ProxyEnabled() || mc.Spec.Proxy.GetReplicas() <= 1 {
		return nil
	}
	return policyv1ac.PodDisruptionBudget(ProxyName(mc), mc.Namespace).
		WithLabels(proxyLabels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(ProxySelectorLabels(mc))).
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithUnhealthyPodEvictionPolicy(policyv1.AlwaysAllow))
}

// proxyNetworkPolicy returns the NetworkPolicy of the proxies, nil without
// spec.proxy or spec.networkPolicy: it admits connections to the proxies'
// port from the peers of spec.networkPolicy.allowedFrom, the clients, and
// from nowhere when it lists none (a rule without peers would admit every
// source).
func proxyNetworkPolicy(mc *cachev1alpha1.Memcached) *networkingv1ac.NetworkPolicyApplyConfiguration {
	np := mc.Spec.NetworkPolicy
	if np == nil || !mc.Spec.ProxyEnabled() {
		return nil
	}
	spec := networkingv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(ProxySelectorLabels(mc))).
		WithPolicyTypes(networkingv1.PolicyTypeIngress)
	if len(np.AllowedFrom) > 0 {
		spec.WithIngress(ingressRule(memcached.Port, np.AllowedFrom))
	}
	return networkingv1ac.NetworkPolicy(ProxyName(mc), mc.Namespace).
		WithLabels(proxyLabels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(spec)
}
