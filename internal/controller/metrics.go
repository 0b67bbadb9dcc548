package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// namespaceLabel is the label of the gauges that holds a Memcached's namespace.
const namespaceLabel = "namespace"

// The operator's own gauges of each Memcached, served with controller-runtime's
// metrics. They come from the status each reconcile computes, so that the
// MemcachedRingDegraded alert works without the exporter.
var (
	desiredServersGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "memcached_operator_memcached_desired_servers",
		Help: "The memcached servers a Memcached asks for: its spec.size.",
	}, []string{namespaceLabel, resources.MemcachedLabel})
	readyServersGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "memcached_operator_memcached_ready_servers",
		Help: "The memcached servers of a Memcached that are ready: its status.readyReplicas.",
	}, []string{namespaceLabel, resources.MemcachedLabel})
	desiredProxiesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "memcached_operator_memcached_desired_proxies",
		Help: "The proxies a Memcached with spec.proxy asks for: spec.proxy.replicas.",
	}, []string{namespaceLabel, resources.MemcachedLabel})
	readyProxiesGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "memcached_operator_memcached_ready_proxies",
		Help: "The proxies of a Memcached with spec.proxy that are ready: its status.proxy.readyReplicas.",
	}, []string{namespaceLabel, resources.MemcachedLabel})
	conditionGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "memcached_operator_memcached_condition",
		Help: "The conditions of a Memcached: 1 for the status each condition has, 0 for the others.",
	}, []string{namespaceLabel, resources.MemcachedLabel, "type", "status"})
)

// conditionStatuses are the statuses a condition may have.
var conditionStatuses = []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown}

func init() {
	ctrlmetrics.Registry.MustRegister(desiredServersGauge, readyServersGauge, desiredProxiesGauge, readyProxiesGauge, conditionGauge)
}

// recordMetrics sets the gauges of mc from newStatus, the status computed for
// it. A condition newStatus does not have loses its series.
func recordMetrics(mc *cachev1alpha1.Memcached, newStatus *cachev1alpha1.MemcachedStatus) {
	desiredServersGauge.WithLabelValues(mc.Namespace, mc.Name).Set(float64(mc.Spec.Size))
	readyServersGauge.WithLabelValues(mc.Namespace, mc.Name).Set(float64(newStatus.ReadyReplicas))
	if p := newStatus.Proxy; p != nil && mc.Spec.ProxyEnabled() {
		desiredProxiesGauge.WithLabelValues(mc.Namespace, mc.Name).Set(float64(mc.Spec.Proxy.GetReplicas()))
		readyProxiesGauge.WithLabelValues(mc.Namespace, mc.Name).Set(float64(p.ReadyReplicas))
	} else {
		desiredProxiesGauge.DeleteLabelValues(mc.Namespace, mc.Name)
		readyProxiesGauge.DeleteLabelValues(mc.Namespace, mc.Name)
	}
	for _, conditionType := range status.Conditions {
		var current *metav1.Condition
		for i := range newStatus.Conditions {
			if newStatus.Conditions[i].Type == conditionType {
				current = &newStatus.Conditions[i]
			}
		}
		if current == nil {
			// By their full labels: a partial match scans every series of
			// every Memcached.
			for _, s := range conditionStatuses {
				conditionGauge.DeleteLabelValues(mc.Namespace, mc.Name, conditionType, string(s))
			}
			continue
		}
		for _, s := range conditionStatuses {
			value := 0.0
			if current.Status == s {
				value = 1
			}
			conditionGauge.WithLabelValues(mc.Namespace, mc.Name, conditionType, string(s)).Set(value)
		}
	}
}

// forgetMetrics deletes the gauges of the Memcached at key, which is gone.
func forgetMetrics(key types.NamespacedName) {
	for _, gauge := range []*prometheus.GaugeVec{desiredServersGauge, readyServersGauge, desiredProxiesGauge, readyProxiesGauge} {
		gauge.DeleteLabelValues(key.Namespace, key.Name)
	}
	for _, conditionType := range status.Conditions {
		for _, s := range conditionStatuses {
			conditionGauge.DeleteLabelValues(key.Namespace, key.Name, conditionType, string(s))
		}
	}
}
