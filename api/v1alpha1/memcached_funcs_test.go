package v1alpha1

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestDefaultsAreTheOnesTheCRDDeclares reads the generated CRD and finds in it
// the defaults that the Get methods fall back to.
func TestDefaultsAreTheOnesTheCRDDeclares(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "cache.example.com_memcacheds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	for field, want := range map[string]string{
		"workload":       strconv.Quote(string(DefaultWorkload)),
		"memoryMB":       strconv.Itoa(DefaultMemoryMB),
		"maxConnections": strconv.Itoa(DefaultMaxConnections),
		"threads":        strconv.Itoa(DefaultThreads),
		"maxItemSizeKB":  strconv.Itoa(DefaultMaxItemSizeKB),
	} {
		declared := spec.Properties[field].Default
		if declared == nil || string(declared.Raw) != want {
			t.Errorf("The CRD declares spec.%s default %v, the Go code falls back to %s", field, declared, want)
		}
	}
	proxy := spec.Properties["proxy"].Properties
	for field, want := range map[string]string{
		"replicas":       strconv.Itoa(DefaultProxyReplicas),
		"maxConnections": strconv.Itoa(DefaultProxyMaxConnections),
	} {
		declared := proxy[field].Default
		if declared == nil || string(declared.Raw) != want {
			t.Errorf("The CRD declares spec.proxy.%s default %v, the Go code falls back to %s", field, declared, want)
		}
	}
	if p := (&ProxySpec{}); p.GetReplicas() != DefaultProxyReplicas || p.GetMaxConnections() != DefaultProxyMaxConnections {
		t.Errorf("An empty proxy spec does not read as the defaults")
	}
	extstore := spec.Properties["extstore"].Properties
	for field, want := range map[string]string{
		"size":                 strconv.Quote(DefaultExtstoreSize),
		"writeBufferMB":        strconv.Itoa(DefaultExtstoreWriteBufferMB),
		"ioThreads":            strconv.Itoa(DefaultExtstoreIOThreads),
		"itemSizeBytes":        strconv.Itoa(DefaultExtstoreItemSizeBytes),
		"recacheRate":          strconv.Itoa(DefaultExtstoreRecacheRate),
		"maxSleepMicroseconds": strconv.Itoa(DefaultExtstoreMaxSleepMicroseconds),
		"freeMemoryPercent":    strconv.Itoa(DefaultExtstoreFreeMemoryPercent),
	} {
		declared := extstore[field].Default
		if declared == nil || string(declared.Raw) != want {
			t.Errorf("The CRD declares spec.extstore.%s default %v, the Go code falls back to %s", field, declared, want)
		}
	}
	if e := (&ExtstoreSpec{}); e.GetSize() != DefaultExtstoreSize || e.GetWriteBufferMB() != DefaultExtstoreWriteBufferMB ||
		e.GetIOThreads() != DefaultExtstoreIOThreads || e.GetItemSizeBytes() != DefaultExtstoreItemSizeBytes ||
		e.GetRecacheRate() != DefaultExtstoreRecacheRate || e.GetMaxSleepMicroseconds() != DefaultExtstoreMaxSleepMicroseconds ||
		e.GetFreeMemoryPercent() != DefaultExtstoreFreeMemoryPercent {
		t.Errorf("An empty extstore spec does not read as the defaults")
	}
	budget := spec.Properties["podDisruptionBudget"].Properties["enabled"].Default
	if budget == nil || string(budget.Raw) != "true" || !(&MemcachedSpec{PodDisruptionBudget: &PodDisruptionBudgetSpec{}}).PodDisruptionBudgetEnabled() {
		t.Errorf("The CRD declares podDisruptionBudget.enabled default %v, the Go code falls back to true", budget)
	}
}

func TestGetMethodsKeepWhatIsSet(t *testing.T) {
	spec := &MemcachedSpec{Workload: WorkloadStatefulSet, MemoryMB: 512, MaxConnections: 8, Threads: 2, MaxItemSizeKB: 2048}
	if spec.GetWorkload() != WorkloadStatefulSet || spec.GetMemoryMB() != 512 || spec.GetMaxConnections() != 8 ||
		spec.GetThreads() != 2 || spec.GetMaxItemSizeKB() != 2048 {
		t.Errorf("A set field is not returned as set: %+v", spec)
	}
	empty := &MemcachedSpec{}
	if empty.GetWorkload() != WorkloadDeployment || empty.GetMemoryMB() != DefaultMemoryMB || empty.MonitoringEnabled() || empty.WarmRestartEnabled() {
		t.Errorf("An empty spec does not read as the defaults")
	}
}
