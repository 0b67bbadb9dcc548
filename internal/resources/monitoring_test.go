package resources

import (
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func TestExporterRunsAsARestrictedDeploymentOfItsOwn(t *testing.T) {
	for _, tt := range []struct {
		name     string
		tls      bool
		wantArgs []string
	}{
		{"plain", false, []string{"--memcached.address=", "--web.listen-address=:9150"}},
		{"tls", true, []string{"--memcached.address=", "--web.listen-address=:9150",
			"--memcached.tls.enable", "--memcached.tls.insecure-skip-verify", "--memcached.tls.server-name=mc-headless.cache.svc"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
				s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
				if tt.tls {
					s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert"}
				}
			})
			d := Build(mc, inputsFor(mc))
			exporter := object[appsv1.Deployment](t, d, DeploymentKind, "mc-exporter")
			pod := exporter.Spec.Template.Spec
			if ptr.Deref(exporter.Spec.Replicas, 0) != 1 || len(pod.Containers) != 1 {
				t.Fatalf("exporter Deployment %+v, want one pod of one container", exporter.Spec)
			}
			c := pod.Containers[0]
			if c.Image != DefaultExporterImage || !slices.Equal(c.Args, tt.wantArgs) {
				t.Errorf("exporter runs %s %q, want %s %q", c.Image, c.Args, DefaultExporterImage, tt.wantArgs)
			}
			if len(c.Ports) != 1 || c.Ports[0].ContainerPort != MetricsPort || c.Ports[0].Name != MetricsPortName {
				t.Errorf("exporter ports %+v, want %s %d", c.Ports, MetricsPortName, MetricsPort)
			}
			sc := c.SecurityContext
			if sc == nil || ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
				!ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) {
				t.Errorf("exporter security context %+v is not restricted", sc)
			}
			svc := object[corev1.Service](t, d, ServiceKind, "mc-exporter")
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != MetricsPort || svc.Spec.Selector[NameLabel] != ExporterAppName {
				t.Errorf("exporter Service %+v, want the metrics port of the exporter's pods", svc.Spec)
			}
			memcachedPod := deploymentOf(t, mc, inputsFor(mc)).Spec.Template.Spec
			if len(memcachedPod.Containers) != 1 {
				t.Errorf("the memcached pods have %d containers: the exporter must not be a sidecar", len(memcachedPod.Containers))
			}
		})
	}
}

func TestExporterPresentsTheClientCertificateOfItsSecret(t *testing.T) {
	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert", ClientCASecretName: "clients-ca"}
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true,
			TLS: &cachev1alpha1.MonitoringTLSSpec{ClientCertificateSecretName: "scraper"}}
	})
	in := inputsFor(mc)
	in.Digests.ExporterTLS = "digest-1"
	exporter := object[appsv1.Deployment](t, Build(mc, in), DeploymentKind, "mc-exporter")
	pod := exporter.Spec.Template.Spec
	c := pod.Containers[0]
	for _, arg := range []string{"--memcached.tls.enable",
		"--memcached.tls.cert-file=" + ExporterTLSDir + "/tls.crt", "--memcached.tls.key-file=" + ExporterTLSDir + "/tls.key"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("exporter args %q lack %s", c.Args, arg)
		}
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != ExporterTLSDir || !c.VolumeMounts[0].ReadOnly {
		t.Fatalf("exporter mounts %+v, want the client certificate read-only at %s", c.VolumeMounts, ExporterTLSDir)
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].Name != c.VolumeMounts[0].Name ||
		pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "scraper" {
		t.Fatalf("exporter volumes %+v, want Secret scraper", pod.Volumes)
	}
	if got := exporter.Spec.Template.Annotations[ExporterTLSDigestAnnotation]; got != "digest-1" {
		t.Errorf("exporter pod template annotation %s = %q, want the certificate's digest", ExporterTLSDigestAnnotation, got)
	}

	// A renewed client certificate restarts the exporter, never memcached.
	renewed := in
	renewed.Digests.ExporterTLS = "digest-2"
	if !reflect.DeepEqual(deploymentOf(t, mc, in).Spec.Template, deploymentOf(t, mc, renewed).Spec.Template) {
		t.Errorf("the memcached pod template changes with the exporter's client certificate")
	}
	after := object[appsv1.Deployment](t, Build(mc, renewed), DeploymentKind, "mc-exporter")
	if reflect.DeepEqual(exporter.Spec.Template, after.Spec.Template) {
		t.Errorf("the exporter's pod template stays the same when its client certificate changes")
	}
}

func TestExporterWithoutTLSIgnoresAClientCertificate(t *testing.T) {
	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true,
			TLS: &cachev1alpha1.MonitoringTLSSpec{ClientCertificateSecretName: "scraper"}}
	})
	exporter := object[appsv1.Deployment](t, Build(mc, inputsFor(mc)), DeploymentKind, "mc-exporter")
	if pod := exporter.Spec.Template.Spec; len(pod.Volumes) != 0 || slices.ContainsFunc(pod.Containers[0].Args,
		func(a string) bool { return a == "--memcached.tls.enable" }) {
		t.Errorf("exporter of a memcached without TLS has volumes %+v and args %q", pod.Volumes, pod.Containers[0].Args)
	}
}

func TestExporterRunsWhereTheMemcachedPodsMay(t *testing.T) {
	nodeAffinity := &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"cache"}}}}}}}
	podAntiAffinity := &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{
		{TopologyKey: corev1.LabelHostname}}}
	for _, tt := range []struct {
		name         string
		spec         func(*cachev1alpha1.MemcachedSpec)
		wantAffinity *corev1.Affinity
	}{
		{"no placement", func(*cachev1alpha1.MemcachedSpec) {}, nil},
		{"nodes, tolerations, priority and node affinity", func(s *cachev1alpha1.MemcachedSpec) {
			s.NodeSelector = map[string]string{"disk": "ssd"}
			s.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "cache", Effect: corev1.TaintEffectNoSchedule}}
			s.PriorityClassName = "caches"
			s.Affinity = &corev1.Affinity{NodeAffinity: nodeAffinity, PodAntiAffinity: podAntiAffinity}
		}, &corev1.Affinity{NodeAffinity: nodeAffinity}},
		{"only pod anti-affinity", func(s *cachev1alpha1.MemcachedSpec) {
			s.Affinity = &corev1.Affinity{PodAntiAffinity: podAntiAffinity}
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
				s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
				tt.spec(s)
			})
			exporter := object[appsv1.Deployment](t, Build(mc, inputsFor(mc)), DeploymentKind, "mc-exporter").Spec.Template.Spec
			memcachedPod := deploymentOf(t, mc, inputsFor(mc)).Spec.Template.Spec
			if !reflect.DeepEqual(exporter.NodeSelector, memcachedPod.NodeSelector) ||
				!reflect.DeepEqual(exporter.Tolerations, memcachedPod.Tolerations) ||
				exporter.PriorityClassName != memcachedPod.PriorityClassName {
				t.Errorf("the exporter runs on %v %v %q, the memcached pods on %v %v %q",
					exporter.NodeSelector, exporter.Tolerations, exporter.PriorityClassName,
					memcachedPod.NodeSelector, memcachedPod.Tolerations, memcachedPod.PriorityClassName)
			}
			if !reflect.DeepEqual(exporter.Affinity, tt.wantAffinity) {
				t.Errorf("the exporter's affinity is %+v, want %+v", exporter.Affinity, tt.wantAffinity)
			}
		})
	}
}

func TestServiceMonitorScrapesEachPodThroughTheExporter(t *testing.T) {
	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true, Interval: "15s",
			ServiceMonitorLabels: map[string]string{"release": "prometheus"}}
	})
	d := Build(mc, inputsFor(mc))
	var sm *unstructured.Unstructured
	for _, o := range d.Objects {
		if o.Kind == ServiceMonitorKind {
			sm = o.Unstructured
		}
	}
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	if sm.GroupVersionKind() != ServiceMonitorGVK || sm.GetName() != "mc" || sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor %s %s labels %v", sm.GroupVersionKind(), sm.GetName(), sm.GetLabels())
	}
	selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if selector[ComponentLabel] != DiscoveryComponent || selector[InstanceLabel] != "mc" {
		t.Errorf("selector %v, want the headless Service of mc only, so that each pod is scraped once", selector)
	}
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("endpoints %v, want one", endpoints)
	}
	e := endpoints[0].(map[string]any)
	if e["port"] != PortName || e["path"] != ScrapePath || e["interval"] != "15s" {
		t.Errorf("endpoint %v, want the memcached port scraped through %s every 15s", e, ScrapePath)
	}
	relabelings := e["relabelings"].([]any)
	targets := map[string]any{}
	for _, r := range relabelings {
		r := r.(map[string]any)
		targets[r["targetLabel"].(string)] = r
	}
	if r, ok := targets["__address__"].(map[string]any); !ok || r["replacement"] != "mc-exporter.cache.svc:9150" {
		t.Errorf("relabelings %v do not send the scrape to the exporter", relabelings)
	}
	if _, ok := targets["__param_target"]; !ok {
		t.Errorf("relabelings %v do not pass the pod's address as the target", relabelings)
	}
}
