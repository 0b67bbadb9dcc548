package controller

import (
	"maps"
	"sync"

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
	desiredServersDesc = prometheus.NewDesc("memcached_operator_memcached_desired_servers",
		"The memcached servers a Memcached asks for: its spec.size.",
		[]string{namespaceLabel, resources.MemcachedLabel}, nil)
	readyServersDesc = prometheus.NewDesc("memcached_operator_memcached_ready_servers",
		"The memcached servers of a Memcached that are ready: its status.readyReplicas.",
		[]string{namespaceLabel, resources.MemcachedLabel}, nil)
	desiredProxiesDesc = prometheus.NewDesc("memcached_operator_memcached_desired_proxies",
		"The proxies a Memcached with spec.proxy asks for: spec.proxy.replicas.",
		[]string{namespaceLabel, resources.MemcachedLabel}, nil)
	readyProxiesDesc = prometheus.NewDesc("memcached_operator_memcached_ready_proxies",
		"The proxies of a Memcached with spec.proxy that are ready: its status.proxy.readyReplicas.",
		[]string{namespaceLabel, resources.MemcachedLabel}, nil)
	conditionDesc = prometheus.NewDesc("memcached_operator_memcached_condition",
		"The conditions of a Memcached: 1 for the status each condition has, 0 for the others.",
		[]string{namespaceLabel, resources.MemcachedLabel, "type", "status"}, nil)
)

// conditionStatuses are the statuses a condition may have.
var conditionStatuses = []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown}

// memcachedGauges holds, for each Memcached, the few numbers its gauges show,
// and makes the series from them only when scraped. A series object for
// each label set, as a GaugeVec keeps, would cost about 0.7 KB each, 17 for
// each Memcached.
type memcachedGauges struct {
	mu     sync.RWMutex
	gauges map[types.NamespacedName]gaugeValues
}

// gaugeValues are what the gauges of one Memcached show.
type gaugeValues struct {
	desiredServers, readyServers int32
	// withProxies tells whether the proxies' gauges are served.
	withProxies                  bool
	desiredProxies, readyProxies int32
	// conditions holds the status of each of status.Conditions, in that
	// order; "" for a condition the Memcached has not, which has no series.
	conditions []metav1.ConditionStatus
}

// theGauges are the gauges of the Memcacheds this process reconciles.
var theGauges = &memcachedGauges{gauges: map[types.NamespacedName]gaugeValues{}}

func init() {
	ctrlmetrics.Registry.MustRegister(theGauges)
}

// Describe implements prometheus.Collector.
func (m *memcachedGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{desiredServersDesc, readyServersDesc, desiredProxiesDesc, readyProxiesDesc, conditionDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It copies the values first, so
// that reconciles setting them do not wait for the scrape.
func (m *memcachedGauges) Collect(ch chan<- prometheus.Metric) {
	m.mu.RLock()
	gauges := maps.Clone(m.gauges)
	m.mu.RUnlock()
	for key, v := range gauges {
		ch <- prometheus.MustNewConstMetric(desiredServersDesc, prometheus.GaugeValue, float64(v.desiredServers), key.Namespace, key.Name)
		ch <- prometheus.MustNewConstMetric(readyServersDesc, prometheus.GaugeValue, float64(v.readyServers), key.Namespace, key.Name)
		if v.withProxies {
			ch <- prometheus.MustNewConstMetric(desiredProxiesDesc, prometheus.GaugeValue, float64(v.desiredProxies), key.Namespace, key.Name)
			ch <- prometheus.MustNewConstMetric(readyProxiesDesc, prometheus.GaugeValue, float64(v.readyProxies), key.Namespace, key.Name)
		}
		for i, conditionType := range status.Conditions {
			if v.conditions[i] == "" {
				continue
			}
			for _, s := range conditionStatuses {
				value := 0.0
				if v.conditions[i] == s {
					value = 1
				}
				ch <- prometheus.MustNewConstMetric(conditionDesc, prometheus.GaugeValue, value,
					key.Namespace, key.Name, conditionType, string(s))
			}
		}
	}
}

// recordMetrics sets the gauges of mc from newStatus, the status computed for
// it. A condition newStatus does not have loses its series.
func recordMetrics(mc *cachev1alpha1.Memcached, newStatus *cachev1alpha1.MemcachedStatus) {
	v := gaugeValues{desiredServers: mc.Spec.Size, readyServers: newStatus.ReadyReplicas,
		conditions: make([]metav1.ConditionStatus, len(status.Conditions))}
	if p := newStatus.Proxy; p != nil && mc.Spec.ProxyEnabled() {
		v.withProxies = true
		v.desiredProxies, v.readyProxies = mc.Spec.Proxy.GetReplicas(), p.ReadyReplicas
	}
	for i, conditionType := range status.Conditions {
		for _, c := range newStatus.Conditions {
			if c.Type == conditionType {
				v.conditions[i] = c.Status
			}
		}
	}
	theGauges.mu.Lock()
	defer theGauges.mu.Unlock()
	theGauges.gauges[types.NamespacedName{Namespace: mc.Namespace, Name: mc.Name}] = v
}

// forgetMetrics deletes the gauges of the Memcached at key, which is gone.
func forgetMetrics(key types.NamespacedName) {
	theGauges.mu.Lock()
	defer theGauges.mu.Unlock()
	delete(theGauges.gauges, key)
}
