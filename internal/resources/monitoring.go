package resources

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

const (
	// DefaultExporterImage is the exporter image unless
	// spec.monitoring.exporterImage or the operator's Images say otherwise.
	DefaultExporterImage = "docker.io/prom/memcached-exporter:v0.15.4"
	// ExporterContainerName is the name of the exporter container.
	ExporterContainerName = "exporter"
	// ExporterComponent is the value of ComponentLabel on the exporter's
	// objects.
	ExporterComponent = "exporter"
	// MetricsPortName names the exporter's port on its container and Service.
	MetricsPortName = "metrics"
	// MetricsPort is the port the exporter serves metrics on.
	MetricsPort = 9150
	// ScrapePath is where the exporter serves the metrics of the memcached
	// given by its target parameter.
	ScrapePath = "/scrape"
	// ExporterTLSDir holds tls.crt and tls.key of
	// spec.monitoring.tls.clientCertificateSecretName in the exporter's
	// container.
	ExporterTLSDir = "/etc/memcached-exporter/tls"
	// ExporterTLSDigestAnnotation is the annotation of the exporter's pod
	// template that changes when its client certificate does.
	ExporterTLSDigestAnnotation = "cache.example.com/exporter-tls-digest"

	exporterTLSVolume = "client-certificate"
)

// ServiceMonitorGVK is the kind of the ServiceMonitor of prometheus-operator.
var ServiceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// ExporterName returns the name of the exporter's Deployment, Service and
// NetworkPolicy of mc.
func ExporterName(mc *cachev1alpha1.Memcached) string {
	return mc.Name + "-exporter"
}

func exporterSelectorLabels(mc *cachev1alpha1.Memcached) map[string]string {
	return map[string]string{
		NameLabel:     ExporterAppName,
		InstanceLabel: mc.Name,
	}
}

func exporterLabels(mc *cachev1alpha1.Memcached) map[string]string {
	labels := exporterSelectorLabels(mc)
	labels[ManagedByLabel] = ManagerName
	labels[ComponentLabel] = ExporterComponent
	return labels
}

// exporterDeployment returns the Deployment of the exporter of mc, nil when
// monitoring is not enabled. One exporter serves the metrics of every
// memcached pod of mc, each at /scrape?target=<pod address>:11211, so that
// the memcached pods need no sidecar and monitoring changes never restart
// them. With TLS, it connects over TLS without checking memcached's
// certificate, whose names need not include the pods' addresses, and
// presents the client certificate of spec.monitoring.tls if any.
func exporterDeployment(mc *cachev1alpha1.Memcached, in Inputs) *appsv1ac.DeploymentApplyConfiguration {
	if !mc.Spec.MonitoringEnabled() {
		return nil
	}
	m := mc.Spec.Monitoring
	image := cmp.Or(m.ExporterImage, in.Images.Exporter, DefaultExporterImage)
	args := []string{
		// No default target: the exporter only serves /scrape.
		"--memcached.address=",
		"--web.listen-address=:" + strconv.Itoa(MetricsPort),
	}
	var clientCertificate string
	if mc.Spec.TLS != nil {
		// Without a server name, memcached_exporter takes one from
		// --memcached.address, which is empty, and exits. The name is
		// only sent, not checked: the headless Service's, which names the
		// pods it dials.
		args = append(args, "--memcached.tls.enable", "--memcached.tls.insecure-skip-verify",
			"--memcached.tls.server-name="+HeadlessServiceName(mc)+"."+mc.Namespace+".svc")
		if m.TLS != nil {
			clientCertificate = m.TLS.ClientCertificateSecretName
			args = append(args,
				"--memcached.tls.cert-file="+path.Join(ExporterTLSDir, corev1.TLSCertKey),
				"--memcached.tls.key-file="+path.Join(ExporterTLSDir, corev1.TLSPrivateKeyKey))
		}
	}
	container := corev1ac.Container().
		WithName(ExporterContainerName).
		WithImage(image).
		WithArgs(args...).
		WithPorts(corev1ac.ContainerPort().
			WithName(MetricsPortName).
			WithContainerPort(MetricsPort).
			WithProtocol(corev1.ProtocolTCP)).
		WithReadinessProbe(tcpProbe(MetricsPortName).WithPeriodSeconds(10)).
		WithSecurityContext(restrictedContainer())
	if r := m.ExporterResources; r != nil {
		container.WithResources(resourceRequirements(r))
	} else {
		container.WithResources(corev1ac.ResourceRequirements().
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}).
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}))
	}
	podSpec := corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false).
		WithSecurityContext(podSecurityContext(in))
	template := corev1ac.PodTemplateSpec().WithLabels(exporterLabels(mc))
	if clientCertificate != "" {
		container.WithVolumeMounts(readOnlyMount(exporterTLSVolume, ExporterTLSDir))
		podSpec.WithVolumes(secretVolume(exporterTLSVolume, clientCertificate, corev1.TLSCertKey, corev1.TLSPrivateKeyKey))
		template.WithAnnotations(map[string]string{ExporterTLSDigestAnnotation: in.Digests.ExporterTLS})
	}
	podSpec.WithContainers(container)
	// The exporter runs on the nodes the memcached pods may run on; the
	// pod (anti-)affinity of the memcached pods is about them, not it.
	withNodePlacement(podSpec, &mc.Spec)
	withImagePullSecrets(podSpec, &mc.Spec)
	if a := mc.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		podSpec.WithAffinity(corev1ac.Affinity().WithNodeAffinity(convert[corev1ac.NodeAffinityApplyConfiguration](a.NodeAffinity)))
	}
	return appsv1ac.Deployment(ExporterName(mc), mc.Namespace).
		WithLabels(exporterLabels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(1).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(exporterSelectorLabels(mc))).
			WithTemplate(template.WithSpec(podSpec)))
}

// exporterService returns the Service of the exporter of mc, nil when
// monitoring is not enabled.
func exporterService(mc *cachev1alpha1.Memcached) *corev1ac.ServiceApplyConfiguration {
	if !mc.Spec.MonitoringEnabled() {
		return nil
	}
	return corev1ac.Service(ExporterName(mc), mc.Namespace).
		WithLabels(exporterLabels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(exporterSelectorLabels(mc)).
			WithPorts(corev1ac.ServicePort().
				WithName(MetricsPortName).
				WithPort(MetricsPort).
				WithTargetPort(intstr.FromString(MetricsPortName)).
				WithProtocol(corev1.ProtocolTCP)))
}

// serviceMonitor returns the ServiceMonitor that has Prometheus scrape every
// memcached pod of mc through its exporter, nil when monitoring is not
// enabled. It discovers the pods through the headless Service, and rewrites
// each pod's address into a scrape of the exporter with that address as the
// target; the instance label keeps the pod's address, and MemcachedLabel
// names the Memcached, for its alert rules to select. It is unstructured: the
// operator does not depend on prometheus-operator's API, which a cluster may
// not have.
func serviceMonitor(mc *cachev1alpha1.Memcached) *unstructured.Unstructured {
	if !mc.Spec.MonitoringEnabled() {
		return nil
	}
	labels := maps.Clone(mc.Spec.Monitoring.ServiceMonitorLabels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, Labels(mc))
	exporter := fmt.Sprintf("%s.%s.svc:%d", ExporterName(mc), mc.Namespace, MetricsPort)
	endpoint := map[string]any{
		"port":   PortName,
		"scheme": "http",
		"path":   ScrapePath,
		"relabelings": []any{
			relabel([]any{"__address__"}, "__param_target", ""),
			relabel([]any{"__param_target"}, "instance", ""),
			relabel(nil, "__address__", exporter),
			relabel(nil, MemcachedLabel, mc.Name),
		},
	}
	if interval := mc.Spec.Monitoring.Interval; interval != "" {
		endpoint["interval"] = interval
	}
	discovery := SelectorLabels(mc)
	discovery[ComponentLabel] = DiscoveryComponent

	sm := &unstructured.Unstructured{}
	sm.SetGroupVersionKind(ServiceMonitorGVK)
	sm.SetName(mc.Name)
	sm.SetNamespace(mc.Namespace)
	sm.SetLabels(labels)
	sm.SetOwnerReferences([]metav1.OwnerReference{*convert[metav1.OwnerReference](ownerReference(mc))})
	spec := map[string]any{
		"selector":          map[string]any{"matchLabels": toAny(discovery)},
		"namespaceSelector": map[string]any{"matchNames": []any{mc.Namespace}},
		"endpoints":         []any{endpoint},
	}
	if err := unstructured.SetNestedMap(sm.Object, spec, "spec"); err != nil {
		panic(fmt.Sprintf("failed to set the ServiceMonitor's spec: %v", err)) // a programming error
	}
	return sm
}

// relabel returns a relabeling of prometheus-operator that replaces
// targetLabel with replacement, or with the value of sourceLabels when
// replacement is empty. The action is given, though it is the default, so
// that the object holds what the operator applied.
func relabel(sourceLabels []any, targetLabel, replacement string) map[string]any {
	r := map[string]any{"action": "replace", "targetLabel": targetLabel}
	if sourceLabels != nil {
		r["sourceLabels"] = sourceLabels
	}
	if replacement != "" {
		r["replacement"] = replacement
	}
	return r
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
