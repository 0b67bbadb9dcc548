package resources

import (
	"maps"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func proxied(mutate func(*cachev1alpha1.MemcachedSpec)) *cachev1alpha1.Memcached {
	return withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.Workload = cachev1alpha1.WorkloadStatefulSet
		s.Proxy = &cachev1alpha1.ProxySpec{Enabled: true}
		if mutate != nil {
			mutate(s)
		}
	})
}

func TestTheServiceSelectsTheProxiesOnlyOnceOneIsReady(t *testing.T) {
	for _, tt := range []struct {
		name         string
		proxy        bool
		proxiesReady bool
		want         map[string]string
	}{
		{"no proxy", false, false, map[string]string{NameLabel: AppName, InstanceLabel: "mc"}},
		{"proxies not ready yet", true, false, map[string]string{NameLabel: AppName, InstanceLabel: "mc"}},
		{"a proxy ready", true, true, map[string]string{NameLabel: ProxyAppName, InstanceLabel: "mc"}},
		{"proxies ready but turned off", false, true, map[string]string{NameLabel: AppName, InstanceLabel: "mc"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mc := proxied(func(s *cachev1alpha1.MemcachedSpec) { s.Proxy.Enabled = tt.proxy })
			in := inputsFor(mc)
			in.ProxiesReady = tt.proxiesReady
			svc := object[corev1.Service](t, Build(mc, in), ServiceKind, "mc")
			if !maps.Equal(svc.Spec.Selector, tt.want) {
				t.Errorf("the Service selects %v, want %v", svc.Spec.Selector, tt.want)
			}
			headless := object[corev1.Service](t, Build(mc, in), ServiceKind, "mc-headless")
			if headless.Spec.Selector[NameLabel] != AppName {
				t.Errorf("the headless Service selects %v, want the servers", headless.Spec.Selector)
			}
		})
	}
}

func TestTheProxiesAdmitOnlyTheClientsTheNetworkPolicyLists(t *testing.T) {
	web := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}
	for _, tt := range []struct {
		name      string
		allowed   []networkingv1.NetworkPolicyPeer
		wantRules int
	}{
		// A rule without peers would admit every source.
		{"no peer listed: nobody", nil, 0},
		{"the listed peers", []networkingv1.NetworkPolicyPeer{web}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mc := proxied(func(s *cachev1alpha1.MemcachedSpec) {
				s.NetworkPolicy = &cachev1alpha1.NetworkPolicySpec{AllowedFrom: tt.allowed}
			})
			d := Build(mc, inputsFor(mc))
			np := object[networkingv1.NetworkPolicy](t, d, NetworkPolicyKind, "mc-proxy")
			if len(np.Spec.Ingress) != tt.wantRules || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				t.Fatalf("the proxies' policy %+v, want %d ingress rules", np.Spec, tt.wantRules)
			}
			for _, rule := range np.Spec.Ingress {
				if len(rule.From) != len(tt.allowed) {
					t.Errorf("the proxies admit %v, want %v", rule.From, tt.allowed)
				}
			}
			// The servers admit the proxies.
			servers := object[networkingv1.NetworkPolicy](t, d, NetworkPolicyKind, "mc")
			admitted := false
			for _, peer := range servers.Spec.Ingress[0].From {
				admitted = admitted || (peer.PodSelector != nil && peer.PodSelector.MatchLabels[NameLabel] == ProxyAppName)
			}
			if !admitted {
				t.Errorf("the servers' policy does not admit the proxies: %+v", servers.Spec.Ingress)
			}
		})
	}
}

func TestProxyResourcesHoldOnlyWhatTheSpecGives(t *testing.T) {
	mc := proxied(func(s *cachev1alpha1.MemcachedSpec) {
		s.Proxy.Resources = &cachev1alpha1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}}
	})
	d := Build(mc, inputsFor(mc))
	for _, o := range d.Objects {
		if o.GetName() != "mc-proxy" || o.Kind != DeploymentKind {
			continue
		}
		containers := o.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
		res := containers[0].(map[string]any)["resources"].(map[string]any)
		if _, ok := res["requests"]; ok {
			t.Errorf("the proxy's applied resources %v hold requests the spec does not give", res)
		}
	}
	proxy := object[appsv1.Deployment](t, d, DeploymentKind, "mc-proxy")
	c := proxy.Spec.Template.Spec.Containers[0]
	if c.Resources.Limits.Memory().String() != "256Mi" || len(c.Command) != 1 || c.Command[0] != "memcached" {
		t.Errorf("the proxy container %+v, want the command memcached and the spec's limit", c)
	}
}
