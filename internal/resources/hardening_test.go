package resources

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// decode turns an apply configuration into the object it describes.
func decode[T any](t *testing.T, ac any) *T {
	t.Helper()
	data, err := json.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	out := new(T)
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func withSpec(mutate func(*cachev1alpha1.MemcachedSpec)) *cachev1alpha1.Memcached {
	mc := newMemcached("mc", 3)
	mc.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
	mc.Spec.PreStopDelaySeconds = ptr.To[int32](5)
	mutate(&mc.Spec)
	return mc
}

func TestPodProbesAndTermination(t *testing.T) {
	tests := []struct {
		name      string
		mc        *cachev1alpha1.Memcached
		wantGrace int64
		wantSleep int64 // 0: no preStop hook
	}{
		{"defaults", withSpec(func(*cachev1alpha1.MemcachedSpec) {}), 30, 5},
		{"configured", withSpec(func(s *cachev1alpha1.MemcachedSpec) {
			s.TerminationGracePeriodSeconds = ptr.To[int64](120)
			s.PreStopDelaySeconds = ptr.To[int32](20)
		}), 120, 20},
		{"no delay", withSpec(func(s *cachev1alpha1.MemcachedSpec) { s.PreStopDelaySeconds = ptr.To[int32](0) }), 30, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := decode[appsv1.Deployment](t, Deployment(tt.mc, SecretHashes{})).Spec.Template.Spec
			if got := ptr.Deref(pod.TerminationGracePeriodSeconds, 0); got != tt.wantGrace {
				t.Errorf("terminationGracePeriodSeconds = %d, want %d", got, tt.wantGrace)
			}
			c := pod.Containers[0]
			var sleep int64
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				sleep = c.Lifecycle.PreStop.Sleep.Seconds
			}
			if sleep != tt.wantSleep {
				t.Errorf("preStop sleep = %d s, want %d", sleep, tt.wantSleep)
			}
			for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if probe == nil || probe.TCPSocket == nil || probe.TCPSocket.Port != intstr.FromString(PortName) {
					t.Errorf("%s probe = %+v, want a TCP probe of port %s", name, probe, PortName)
				}
			}
		})
	}
}

func TestPodPlacement(t *testing.T) {
	zoneSpread := corev1.TopologySpreadConstraint{MaxSkew: 2, TopologyKey: "rack", WhenUnsatisfiable: corev1.DoNotSchedule}
	tests := []struct {
		name             string
		mc               *cachev1alpha1.Memcached
		wantAntiAffinity bool
		wantSpreadKeys   []string
	}{
		{"defaults: soft anti-affinity over nodes, spread over zones",
			withSpec(func(*cachev1alpha1.MemcachedSpec) {}), true, []string{corev1.LabelTopologyZone}},
		{"empty affinity and spread turn both off",
			withSpec(func(s *cachev1alpha1.MemcachedSpec) {
				s.Affinity = &corev1.Affinity{}
				s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{}
			}), false, nil},
		{"own affinity and spread replace the defaults",
			withSpec(func(s *cachev1alpha1.MemcachedSpec) {
				s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}
				s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{zoneSpread}
			}), false, []string{"rack"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := decode[appsv1.Deployment](t, Deployment(tt.mc, SecretHashes{})).Spec.Template.Spec
			hasAntiAffinity := pod.Affinity != nil && pod.Affinity.PodAntiAffinity != nil
			if hasAntiAffinity != tt.wantAntiAffinity {
				t.Fatalf("pod anti-affinity %+v, want it: %v", pod.Affinity, tt.wantAntiAffinity)
			}
			if hasAntiAffinity {
				terms := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
				if len(terms) != 1 || terms[0].PodAffinityTerm.TopologyKey != corev1.LabelHostname ||
					pod.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
					t.Errorf("anti-affinity %+v, want one preferred term over %s", pod.Affinity.PodAntiAffinity, corev1.LabelHostname)
				}
			}
			var keys []string
			for _, c := range pod.TopologySpreadConstraints {
				keys = append(keys, c.TopologyKey)
				if c.TopologyKey == corev1.LabelTopologyZone && c.WhenUnsatisfiable != corev1.ScheduleAnyway {
					t.Errorf("the zone spread is %s, want ScheduleAnyway so that a cluster of one zone still schedules", c.WhenUnsatisfiable)
				}
			}
			if !slices.Equal(keys, tt.wantSpreadKeys) {
				t.Errorf("spread over %v, want %v", keys, tt.wantSpreadKeys)
			}
		})
	}
}

func TestPodSecretsAndExporter(t *testing.T) {
	hashes := SecretHashes{Auth: "authhash", TLS: "tlshash"}
	tests := []struct {
		name            string
		mc              *cachev1alpha1.Memcached
		wantVolumes     map[string]string // volume name → Secret
		wantAnnotations map[string]string
		wantExporter    []string // exporter args; nil: no exporter
	}{
		{"plain", withSpec(func(*cachev1alpha1.MemcachedSpec) {}), map[string]string{}, nil, nil},
		{"auth", withSpec(func(s *cachev1alpha1.MemcachedSpec) {
			s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"}
		}), map[string]string{"auth": "mc-auth"}, map[string]string{AuthHashAnnotation: "authhash"}, nil},
		{"tls with client CA", withSpec(func(s *cachev1alpha1.MemcachedSpec) {
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert", ClientCASecretName: "ca"}
		}), map[string]string{"tls": "cert", "client-ca": "ca"}, map[string]string{TLSHashAnnotation: "tlshash"}, nil},
		{"exporter", withSpec(func(s *cachev1alpha1.MemcachedSpec) {
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
		}), map[string]string{}, nil, []string{"--memcached.address=localhost:11211", "--web.listen-address=:9150"}},
		{"exporter with tls", withSpec(func(s *cachev1alpha1.MemcachedSpec) {
			s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert"}
		}), map[string]string{"tls": "cert"}, map[string]string{TLSHashAnnotation: "tlshash"},
			[]string{"--memcached.address=localhost:11211", "--web.listen-address=:9150",
				"--memcached.tls.enable", "--memcached.tls.insecure-skip-verify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			template := decode[appsv1.Deployment](t, Deployment(tt.mc, hashes)).Spec.Template
			pod := template.Spec
			volumes := map[string]string{}
			for _, v := range pod.Volumes {
				if v.Secret == nil || ptr.Deref(v.Secret.DefaultMode, 0) != 0o440 {
					t.Errorf("volume %s is not a Secret readable by the pod's group only: %+v", v.Name, v.VolumeSource)
					continue
				}
				volumes[v.Name] = v.Secret.SecretName
			}
			if !maps.Equal(volumes, tt.wantVolumes) {
				t.Errorf("Secret volumes %v, want %v", volumes, tt.wantVolumes)
			}
			mounts := map[string]bool{}
			for _, m := range pod.Containers[0].VolumeMounts {
				mounts[m.Name] = m.ReadOnly
			}
			for name := range tt.wantVolumes {
				if readOnly, ok := mounts[name]; !ok || !readOnly {
					t.Errorf("volume %s is not mounted read-only in memcached: %v", name, mounts)
				}
			}
			for k, v := range tt.wantAnnotations {
				if template.Annotations[k] != v {
					t.Errorf("annotation %s = %q, want %q", k, template.Annotations[k], v)
				}
			}
			if len(tt.wantAnnotations) == 0 && len(template.Annotations) > 0 {
				t.Errorf("annotations %v, want none", template.Annotations)
			}

			if tt.wantExporter == nil {
				if len(pod.Containers) != 1 {
					t.Errorf("containers = %d, want memcached only", len(pod.Containers))
				}
				return
			}
			if len(pod.Containers) != 2 {
				t.Fatalf("containers = %d, want memcached and the exporter", len(pod.Containers))
			}
			e := pod.Containers[1]
			if e.Image != DefaultExporterImage || !slices.Equal(e.Args, tt.wantExporter) {
				t.Errorf("exporter runs %s %q, want %s %q", e.Image, e.Args, DefaultExporterImage, tt.wantExporter)
			}
			if len(e.Ports) != 1 || e.Ports[0].ContainerPort != MetricsPort || e.Ports[0].Name != MetricsPortName {
				t.Errorf("exporter ports %+v, want %s %d", e.Ports, MetricsPortName, MetricsPort)
			}
			sc := e.SecurityContext
			if sc == nil || ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("exporter security context %+v is not restricted", sc)
			}
			svc := decode[corev1.Service](t, Service(tt.mc))
			if len(svc.Spec.Ports) != 2 || svc.Spec.Ports[1].Name != MetricsPortName || svc.Spec.Ports[1].Port != MetricsPort {
				t.Errorf("Service ports %+v, want memcached and metrics", svc.Spec.Ports)
			}
		})
	}
}

func TestPodDisruptionBudget(t *testing.T) {
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
			ac := PodDisruptionBudget(mc)
			if tt.wantNone {
				if ac != nil {
					t.Errorf("got a PodDisruptionBudget, want none")
				}
				return
			}
			pdb := decode[policyv1.PodDisruptionBudget](t, ac)
			if !ptrEqual(pdb.Spec.MaxUnavailable, tt.wantMaxUnavailable) || !ptrEqual(pdb.Spec.MinAvailable, tt.wantMinAvailable) {
				t.Errorf("maxUnavailable %v, minAvailable %v; want %v, %v",
					pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable, tt.wantMaxUnavailable, tt.wantMinAvailable)
			}
			if !maps.Equal(pdb.Spec.Selector.MatchLabels, SelectorLabels(mc)) || len(pdb.OwnerReferences) != 1 {
				t.Errorf("selector %v, owners %v; want the pods' selector and the Memcached", pdb.Spec.Selector, pdb.OwnerReferences)
			}
		})
	}
}

func ptrEqual(a, b *intstr.IntOrString) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func TestNetworkPolicy(t *testing.T) {
	clients := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "web"}}}
	prometheus := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}

	if NetworkPolicy(newMemcached("mc", 1)) != nil {
		t.Error("got a NetworkPolicy without spec.networkPolicy")
	}

	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.NetworkPolicy = &cachev1alpha1.NetworkPolicySpec{
			AllowedFrom: []networkingv1.NetworkPolicyPeer{clients}, MetricsAllowedFrom: []networkingv1.NetworkPolicyPeer{prometheus}}
	})
	np := decode[networkingv1.NetworkPolicy](t, NetworkPolicy(mc))
	if !maps.Equal(np.Spec.PodSelector.MatchLabels, SelectorLabels(mc)) ||
		!slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("the policy selects %v for %v, want the memcached pods' ingress", np.Spec.PodSelector, np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 1 {
		t.Fatalf("ingress rules = %d, want 1 (no metrics rule without monitoring)", len(np.Spec.Ingress))
	}
	rule := np.Spec.Ingress[0]
	if len(rule.Ports) != 1 || rule.Ports[0].Port.IntValue() != 11211 {
		t.Errorf("ports %+v, want 11211 only", rule.Ports)
	}
	if len(rule.From) != 2 || rule.From[1].PodSelector.MatchLabels["role"] != "web" ||
		!maps.Equal(rule.From[0].PodSelector.MatchLabels, SelectorLabels(mc)) {
		t.Errorf("from %+v, want the Memcached's own pods and the allowed peers", rule.From)
	}

	mc.Spec.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	np = decode[networkingv1.NetworkPolicy](t, NetworkPolicy(mc))
	if len(np.Spec.Ingress) != 2 || np.Spec.Ingress[1].Ports[0].Port.IntValue() != MetricsPort ||
		np.Spec.Ingress[1].From[1].NamespaceSelector == nil {
		t.Errorf("ingress %+v, want a second rule for the metrics port from metricsAllowedFrom", np.Spec.Ingress)
	}
}

func TestServiceMonitor(t *testing.T) {
	if ServiceMonitor(newMemcached("mc", 1)) != nil {
		t.Error("got a ServiceMonitor without monitoring")
	}
	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true, Interval: "15s",
			ServiceMonitorLabels: map[string]string{"release": "prometheus"}}
	})
	sm := ServiceMonitor(mc)
	if sm.GroupVersionKind() != ServiceMonitorGVK || sm.GetName() != "mc" || sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor %s %s labels %v", sm.GroupVersionKind(), sm.GetName(), sm.GetLabels())
	}
	endpoints := sm.Object["spec"].(map[string]any)["endpoints"].([]any)
	if e := endpoints[0].(map[string]any); e["port"] != MetricsPortName || e["interval"] != "15s" {
		t.Errorf("endpoint %v, want port %s every 15s", e, MetricsPortName)
	}
	if owners := sm.GetOwnerReferences(); len(owners) != 1 || owners[0].UID != mc.UID || !ptr.Deref(owners[0].Controller, false) {
		t.Errorf("owners %+v, want the Memcached", owners)
	}
}

func TestHash(t *testing.T) {
	a, b := Hash([]byte("ab"), []byte("c")), Hash([]byte("a"), []byte("bc"))
	if a == b {
		t.Error("different contents hash the same")
	}
	if Hash([]byte("ab"), []byte("c")) != a {
		t.Error("the same contents hash differently")
	}
}
