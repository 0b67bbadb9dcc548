package resources

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// podDisruptionBudget returns the PodDisruptionBudget of mc, named after it,
// or nil when mc should have none: when spec.size is 1 or less, a budget
// would block node drains for nothing, or when spec.podDisruptionBudget
// turns it off. It allows one pod down at a time unless the spec says
// otherwise. Pods that are not ready, e.g. crash-looping ones, may always be
// evicted, so that they never block a node drain.
func podDisruptionBudget(mc *cachev1alpha1.Memcached) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	budget := mc.Spec.PodDisruptionBudget
	if mc.Spec.Size <= 1 || !mc.Spec.PodDisruptionBudgetEnabled() {
		return nil
	}
	spec := policyv1ac.PodDisruptionBudgetSpec().
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(mc))).
		WithUnhealthyPodEvictionPolicy(policyv1.AlwaysAllow)
	switch {
	case budget != nil && budget.MinAvailable != nil:
		spec.WithMinAvailable(*budget.MinAvailable)
	case budget != nil && budget.MaxUnavailable != nil:
		spec.WithMaxUnavailable(*budget.MaxUnavailable)
	default:
		spec.WithMaxUnavailable(intstr.FromInt32(1))
	}
	return policyv1ac.PodDisruptionBudget(mc.Name, mc.Namespace).
		WithLabels(Labels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(spec)
}

// networkPolicy returns the NetworkPolicy of mc, named after it, or nil when
// spec.networkPolicy is not set. It admits connections to memcached's port
// from the peers of spec.networkPolicy.allowedFrom, the other memcached pods
// of mc and, with monitoring, its exporter and, with spec.proxy, its proxies
// only.
func networkPolicy(mc *cachev1alpha1.Memcached) *networkingv1ac.NetworkPolicyApplyConfiguration {
	np := mc.Spec.NetworkPolicy
	if np == nil {
		return nil
	}
	rule := ingressRule(memcached.Port, np.AllowedFrom).
		WithFrom(networkingv1ac.NetworkPolicyPeer().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(mc))))
	if mc.Spec.MonitoringEnabled() {
		rule.WithFrom(networkingv1ac.NetworkPolicyPeer().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(exporterSelectorLabels(mc))))
	}
	if mc.Spec.ProxyEnabled() {
		rule.WithFrom(networkingv1ac.NetworkPolicyPeer().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(ProxySelectorLabels(mc))))
	}
	return networkingv1ac.NetworkPolicy(mc.Name, mc.Namespace).
		WithLabels(Labels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(mc))).
			WithPolicyTypes(networkingv1.PolicyTypeIngress).
			WithIngress(rule))
}

// exporterNetworkPolicy returns the NetworkPolicy of the exporter of mc, or
// nil without spec.networkPolicy or monitoring: it admits connections to the
// metrics port from the peers of spec.networkPolicy.metricsAllowedFrom only.
func exporterNetworkPolicy(mc *cachev1alpha1.Memcached) *networkingv1ac.NetworkPolicyApplyConfiguration {
	np := mc.Spec.NetworkPolicy
	if np == nil || !mc.Spec.MonitoringEnabled() {
		return nil
	}
	spec := networkingv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(exporterSelectorLabels(mc))).
		WithPolicyTypes(networkingv1.PolicyTypeIngress)
	if len(np.MetricsAllowedFrom) > 0 {
		spec.WithIngress(ingressRule(MetricsPort, np.MetricsAllowedFrom))
	}
	return networkingv1ac.NetworkPolicy(ExporterName(mc), mc.Namespace).
		WithLabels(exporterLabels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(spec)
}

func ingressRule(port int32, peers []networkingv1.NetworkPolicyPeer) *networkingv1ac.NetworkPolicyIngressRuleApplyConfiguration {
	rule := networkingv1ac.NetworkPolicyIngressRule().
		WithPorts(networkingv1ac.NetworkPolicyPort().
			WithProtocol(corev1.ProtocolTCP).
			WithPort(intstr.FromInt32(port)))
	for i := range peers {
		rule.WithFrom(convert[networkingv1ac.NetworkPolicyPeerApplyConfiguration](&peers[i]))
	}
	return rule
}
