package e2e

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// hostileSpecs are Memcacheds the API server must refuse: each holds a
// value the operator's Go client could not decode, or only slowly, which
// would break its list and watch of every Memcached.
var hostileSpecs = []string{
	`{size: 2, podDisruptionBudget: {maxUnavailable: 3000000000}}`,
	`{size: 2, podDisruptionBudget: {minAvailable: 9223372036854775807}}`,
	`{size: 2, resources: {limits: {memory: "1e-1000000000"}}}`,
	`{size: 2, resources: {requests: {cpu: "9e999999999"}}}`,
	`{size: 2, resources: {limits: {memory: "1e1.5"}}}`,
	`{size: 2, monitoring: {exporterResources: {requests: {cpu: "5E.5"}}}}`,
	`{size: 2, monitoring: {exporterResources: {limits: {memory: "1e-99999999999"}}}}`,
	`{size: 3000000000}`,
	`{size: 2, topologySpreadConstraints: [{maxSkew: 3000000000, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]}`,
}

func TestAHostileMemcachedStallsNoOther(t *testing.T) {
	g := NewWithT(t)
	hostile := newNamespace(t, nil)
	for i, spec := range hostileSpecs {
		obj := &unstructured.Unstructured{}
		g.Expect(yaml.Unmarshal([]byte("apiVersion: cache.example.com/v1alpha1\nkind: Memcached\nmetadata: {name: hostile}\nspec: "+spec),
			&obj.Object)).To(Succeed())
		obj.SetNamespace(hostile)
		err := k8sClient.Create(t.Context(), obj)
		g.Expect(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)).To(BeTrue(), "spec %d %s was not refused: %v", i, spec, err)
	}
	// Arguments the operator refuses are refused at admission already.
	badArgs := &cachev1alpha1.Memcached{Spec: cachev1alpha1.MemcachedSpec{Size: 1, ExtraArgs: []string{"--udp=11211"}}}
	badArgs.Namespace, badArgs.Name = hostile, "bad-args"
	err := k8sClient.Create(t.Context(), badArgs)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "extraArgs --udp=11211 were not refused: %v", err)
	g.Expect(err.Error()).To(ContainSubstring("long options must be written in full"))
	// What is accepted but cannot run is reported on the Memcached alone.
	for name, spec := range map[string]cachev1alpha1.MemcachedSpec{
		"no-secret":  {Size: 1, Auth: &cachev1alpha1.AuthSpec{SecretName: "missing"}},
		"no-node":    {Size: 1, NodeSelector: map[string]string{"disk": "none"}},
		"no-storage": {Size: 1, Workload: cachev1alpha1.WorkloadStatefulSet, WarmRestart: &cachev1alpha1.WarmRestartSpec{Enabled: true, StorageClassName: ptr.To("missing")}},
	} {
		mc := &cachev1alpha1.Memcached{}
		mc.Namespace, mc.Name, mc.Spec = hostile, name, spec
		g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	}

	// Another namespace's Memcached converges, before and after the
	// operator restarts.
	ns := newNamespace(t, nil)
	mc := createMemcached(t, ns, 2)
	expectConverged(t, mc, 2)
	g.Expect(operator.Stop()).To(Succeed())
	g.Expect(startOperator(t.Context())).To(Succeed())
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 3 })
	expectConverged(t, mc, 3)
	log := lastOperatorLog(t)
	g.Expect(log).NotTo(ContainSubstring("Failed to watch"), "the operator could not watch Memcacheds")
	g.Expect(strings.Count(log, "Starting workers")).To(Equal(1))
}
