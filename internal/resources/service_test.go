package resources

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestServicesSelectThePodsAndTheHeadlessOneKeepsNotReadyPods(t *testing.T) {
	mc := newMemcached("mc", 3)
	d := Build(mc, inputsFor(mc))
	for _, name := range []string{"mc", "mc-headless"} {
		svc := object[corev1.Service](t, d, ServiceKind, name)
		if !maps.Equal(svc.Spec.Selector, SelectorLabels(mc)) {
			t.Errorf("%s selects %v, want the memcached pods %v", name, svc.Spec.Selector, SelectorLabels(mc))
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != PortName || svc.Spec.Ports[0].Port != 11211 ||
			svc.Spec.Ports[0].TargetPort != intstr.FromString(PortName) || svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
			t.Errorf("%s ports %+v, want TCP 11211 named %s: its SRV records are _%s._tcp", name, svc.Spec.Ports, PortName, PortName)
		}
	}
	headless := object[corev1.Service](t, d, ServiceKind, "mc-headless")
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("headless Service: clusterIP %q, publishNotReadyAddresses %v; want None and true, so that a restarting pod "+
			"keeps its DNS records", headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses)
	}
	if headless.Labels[ComponentLabel] != DiscoveryComponent {
		t.Errorf("headless Service labels %v, want %s=%s", headless.Labels, ComponentLabel, DiscoveryComponent)
	}
	if svc := object[corev1.Service](t, d, ServiceKind, "mc"); svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.PublishNotReadyAddresses {
		t.Errorf("Service mc: type %s, publishNotReadyAddresses %v; want a ClusterIP of ready pods", svc.Spec.Type, svc.Spec.PublishNotReadyAddresses)
	}
}

func TestServersConfigMapPublishesTheListByLineAndByComma(t *testing.T) {
	mc := newMemcached("mc", 2)
	for _, tt := range []struct {
		servers       []string
		lines, commas string
	}{
		{nil, "", ""},
		{[]string{"mc-0.mc-headless.cache.svc:11211"}, "mc-0.mc-headless.cache.svc:11211\n", "mc-0.mc-headless.cache.svc:11211"},
		{[]string{"10.0.0.1:11211", "10.0.0.2:11211"}, "10.0.0.1:11211\n10.0.0.2:11211\n", "10.0.0.1:11211,10.0.0.2:11211"},
	} {
		in := inputsFor(mc)
		in.Servers.List = tt.servers
		cm := object[corev1.ConfigMap](t, Build(mc, in), ConfigMapKind, "mc-servers")
		if cm.Data[ServersKey] != tt.lines || cm.Data[ServersCSVKey] != tt.commas || len(cm.Data) != 2 {
			t.Errorf("servers %q: data %q, want %q and %q", tt.servers, cm.Data, tt.lines, tt.commas)
		}
	}
}
