package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// Reasons of the MonitoringReady condition.
const (
	ReasonServiceMonitorReady      = "ServiceMonitorReady"
	ReasonServiceMonitorAPIMissing = "ServiceMonitorAPIMissing"
)

// applyServiceMonitor applies the ServiceMonitor of mc when monitoring is
// enabled, and returns the MonitoringReady condition; nil when monitoring is
// not enabled. A cluster without the ServiceMonitor API is not an error: the
// condition says so, and the exporters run all the same. Whether the API
// exists is looked up once, as the operator starts, with its watch.
func (r *MemcachedReconciler) applyServiceMonitor(ctx context.Context, mc *cachev1alpha1.Memcached) (*metav1.Condition, error) {
	desired := resources.ServiceMonitor(mc)
	current := &unstructured.Unstructured{}
	current.SetGroupVersionKind(resources.ServiceMonitorGVK)
	key := client.ObjectKeyFromObject(mc)
	if desired == nil {
		// Only a Memcached that had monitoring on can have a ServiceMonitor;
		// the others cost no request to the API server.
		if r.serviceMonitorAPI && meta.IsStatusConditionTrue(mc.Status.Conditions, cachev1alpha1.ConditionMonitoringReady) {
			if err := r.deleteOwned(ctx, mc, key, current); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	if !r.serviceMonitorAPI {
		return &metav1.Condition{Status: metav1.ConditionFalse, Reason: ReasonServiceMonitorAPIMissing,
			Message: "The cluster had no monitoring.coreos.com/v1 ServiceMonitor API when the operator started, so no " +
				"ServiceMonitor was created; the exporters serve metrics on port " + fmt.Sprint(resources.MetricsPort) +
				" all the same. Install prometheus-operator's CRDs, then restart the operator"}, nil
	}
	_, upToDate, err := r.compare(ctx, r.Client, key, current, desired)
	if err != nil {
		return nil, err
	}
	if !upToDate {
		logf.FromContext(ctx).Info("Applying ServiceMonitor", "ServiceMonitor", klog.KObj(mc))
		if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(desired), fieldOwner, client.ForceOwnership); err != nil {
			return nil, fmt.Errorf("failed to apply ServiceMonitor: %w", err)
		}
	}
	return &metav1.Condition{Status: metav1.ConditionTrue, Reason: ReasonServiceMonitorReady,
		Message: fmt.Sprintf("ServiceMonitor %s has Prometheus scrape the exporters through Service %s", mc.Name, mc.Name)}, nil
}
