package resources

import (
	"maps"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func TestPodDisruptionBudgetFollowsTheSizeAndTheSpec(t *testing.T) {
	three := intstr.FromInt32(3)
	half := intstr.FromString("50%")
	tests := []struct {
		name               string
		size               int32
		budget             *cachev1alpha1.PodDisruptionBudgetSpec
		wantMaxUnavailable *intstr.IntOrString
		wantMinAvailable   *intstr.IntOrString
		wantNone           bool
	}{
		{name: "size 0: none", size: 0, wantNone: true},
		{name: "size 1: none", size: 1, wantNone: true},
		{name: "size 2: one down at a time", size: 2, wantMaxUnavailable: ptr.To(intstr.FromInt32(1))},
		{name: "maxUnavailable", size: 5, budget: &cachev1alpha1.PodDisruptionBudgetSpec{MaxUnavailable: &half},
			wantMaxUnavailable: &half},
		{name: "minAvailable", size: 5, budget: &cachev1alpha1.PodDisruptionBudgetSpec{MinAvailable: &three},
			wantMinAvailable: &three},
		{name: "turned off", size: 5, budget: &cachev1alpha1.PodDisruptionBudgetSpec{Enabled: ptr.To(false)}, wantNone: true},
		{name: "size 1 even when configured", size: 1, budget: &cachev1alpha1.PodDisruptionBudgetSpec{MinAvailable: &three},
			wantNone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := newMemcached("mc", tt.size)
			mc.Spec.PodDisruptionBudget = tt.budget
			d := Build(mc, inputsFor(mc))
			pdb := lookup[policyv1.PodDisruptionBudget](t, d, PDBKind, "mc")
			if tt.wantNone {
				if pdb != nil || !absent(d, PDBKind, "mc") {
					t.Errorf("got a PodDisruptionBudget, want none")
				}
				return
			}
			if pdb == nil {
				t.Fatal("no PodDisruptionBudget")
			}
			if !ptrEqual(pdb.Spec.MaxUnavailable, tt.wantMaxUnavailable) || !ptrEqual(pdb.Spec.MinAvailable, tt.wantMinAvailable) {
				t.Errorf("maxUnavailable %v, minAvailable %v; want %v, %v",
					pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable, tt.wantMaxUnavailable, tt.wantMinAvailable)
			}
			if !maps.Equal(pdb.Spec.Selector.MatchLabels, SelectorLabels(mc)) {
				t.Errorf("selector %v, want the pods' selector", pdb.Spec.Selector)
			}
			if ptr.Deref(pdb.Spec.UnhealthyPodEvictionPolicy, "") != policyv1.AlwaysAllow {
				t.Errorf("unhealthyPodEvictionPolicy %v: crash-looping pods would block node drains", pdb.Spec.UnhealthyPodEvictionPolicy)
			}
		})
	}
}

func ptrEqual(a, b *intstr.IntOrString) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func TestNetworkPoliciesAdmitOnlyTheAllowedPeers(t *testing.T) {
	clients := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "web"}}}
	prometheus := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}

	plain := newMemcached("mc", 1)
	if d := Build(plain, inputsFor(plain)); !absent(d, NetworkPolicyKind, "mc") || !absent(d, NetworkPolicyKind, "mc-exporter") {
		t.Error("a NetworkPolicy is applied without spec.networkPolicy")
	}

	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.NetworkPolicy = &cachev1alpha1.NetworkPolicySpec{
			AllowedFrom: []networkingv1.NetworkPolicyPeer{clients}, MetricsAllowedFrom: []networkingv1.NetworkPolicyPeer{prometheus}}
	})
	d := Build(mc, inputsFor(mc))
	np := object[networkingv1.NetworkPolicy](t, d, NetworkPolicyKind, "mc")
	if !maps.Equal(np.Spec.PodSelector.MatchLabels, SelectorLabels(mc)) || len(np.Spec.PolicyTypes) != 1 ||
		np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress || len(np.Spec.Ingress) != 1 {
		t.Fatalf("policy %+v, want one ingress rule for the memcached pods", np.Spec)
	}
	rule := np.Spec.Ingress[0]
	if len(rule.Ports) != 1 || rule.Ports[0].Port.IntValue() != 11211 {
		t.Errorf("ports %+v, want 11211 only", rule.Ports)
	}
	if len(rule.From) != 2 || rule.From[0].PodSelector.MatchLabels["role"] != "web" ||
		!maps.Equal(rule.From[1].PodSelector.MatchLabels, SelectorLabels(mc)) {
		t.Errorf("from %+v, want the allowed peers and the Memcached's own pods", rule.From)
	}
	if !absent(d, NetworkPolicyKind, "mc-exporter") {
		t.Error("an exporter NetworkPolicy without monitoring")
	}

	mc.Spec.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	d = Build(mc, inputsFor(mc))
	np = object[networkingv1.NetworkPolicy](t, d, NetworkPolicyKind, "mc")
	if from := np.Spec.Ingress[0].From; len(from) != 3 || !maps.Equal(from[2].PodSelector.MatchLabels, exporterSelectorLabels(mc)) {
		t.Errorf("from %+v, want the exporter's pods admitted too", from)
	}
	exporter := object[networkingv1.NetworkPolicy](t, d, NetworkPolicyKind, "mc-exporter")
	if !maps.Equal(exporter.Spec.PodSelector.MatchLabels, exporterSelectorLabels(mc)) || len(exporter.Spec.Ingress) != 1 ||
		exporter.Spec.Ingress[0].Ports[0].Port.IntValue() != MetricsPort || exporter.Spec.Ingress[0].From[0].NamespaceSelector == nil {
		t.Errorf("exporter policy %+v, want the metrics port from metricsAllowedFrom only", exporter.Spec)
	}
}
