package resources

import (
	"fmt"
	"maps"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

const (
	// DefaultExporterImage is the exporter image unless
	// spec.monitoring.exporterImage says otherwise.
	DefaultExporterImage = "prom/memcached-exporter:v0.15.4"
	// ExporterContainerName is the name of the exporter container.
	ExporterContainerName = "exporter"
	// MetricsPortName names the exporter's port on containers and the Service.
	MetricsPortName = "metrics"
	// MetricsPort is the port the exporter serves metrics on.
	MetricsPort = 9150
)

// ServiceMonitorGVK is the kind of the ServiceMonitor of prometheus-operator.
var ServiceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

func monitoringEnabled(mc *cachev1alpha1.Memcached) bool {
	return mc.Spec.Monitoring != nil && mc.Spec.Monitoring.Enabled
}

// exporterContainer returns the exporter sidecar of the memcached pods, nil
// when monitoring is not enabled. It reaches memcached on the loopback
// interface; with TLS, it does not verify memcached's certificate, whose
// name is not localhost, as the connection never leaves the pod.
func exporterContainer(mc *cachev1alpha1.Memcached) *corev1ac.ContainerApplyConfiguration {
	if !monitoringEnabled(mc) {
		return nil
	}
	m := mc.Spec.Monitoring
	image := m.ExporterImage
	if image == "" {
		image = DefaultExporterImage
	}
	args := []string{
		"--memcached.address=localhost:" + strconv.Itoa(memcached.Port),
		"--web.listen-address=:" + strconv.Itoa(MetricsPort),
	}
	if mc.Spec.TLS != nil {
		args = append(args, "--memcached.tls.enable", "--memcached.tls.insecure-skip-verify")
	}
	c := corev1ac.Container().
		WithName(ExporterContainerName).
		WithImage(image).
		WithArgs(args...).
		WithPorts(corev1ac.ContainerPort().
			WithName(MetricsPortName).
			WithContainerPort(MetricsPort).
			WithProtocol(corev1.ProtocolTCP)).
		WithReadinessProbe(tcpProbe(MetricsPortName).WithPeriodSeconds(10)).
		WithSecurityContext(restrictedContainer())
	if m.ExporterResources != nil {
		c.WithResources(convert[corev1ac.ResourceRequirementsApplyConfiguration](m.ExporterResources))
	}
	return c
}

// ServiceMonitor returns the ServiceMonitor that has Prometheus scrape the
// exporters of mc through its Service, nil when monitoring is not enabled.
// It is unstructured: the operator does not depend on prometheus-operator's
// API, which a cluster may not have.
func ServiceMonitor(mc *cachev1alpha1.Memcached) *unstructured.Unstructured {
	if !monitoringEnabled(mc) {
		return nil
	}
	labels := maps.Clone(mc.Spec.Monitoring.ServiceMonitorLabels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, Labels(mc))
	endpoint := map[string]any{"port": MetricsPortName}
	if interval := mc.Spec.Monitoring.Interval; interval != "" {
		endpoint["interval"] = interval
	}

	sm := &unstructured.Unstructured{}
	sm.SetGroupVersionKind(ServiceMonitorGVK)
	sm.SetName(mc.Name)
	sm.SetNamespace(mc.Namespace)
	sm.SetLabels(labels)
	sm.SetOwnerReferences([]metav1.OwnerReference{*convert[metav1.OwnerReference](ownerReference(mc))})
	// This selects the headless Service too, but only the Service has the
	// metrics port, so Prometheus scrapes each exporter once.
	spec := map[string]any{
		"selector":  map[string]any{"matchLabels": toAny(Labels(mc))},
		"endpoints": []any{endpoint},
	}
	if err := unstructured.SetNestedMap(sm.Object, spec, "spec"); err != nil {
		panic(fmt.Sprintf("failed to set the ServiceMonitor's spec: %v", err)) // a programming error
	}
	return sm
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
