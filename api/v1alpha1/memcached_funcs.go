package v1alpha1

// The defaults the CRD declares with +kubebuilder:default. The API server
// fills them in, so a Memcached read from it always has them; Go code that
// builds a Memcached itself, or reads one stored before a default existed,
// reads them through the methods below.
const (
	DefaultWorkload       = WorkloadDeployment
	DefaultMemoryMB       = 64
	DefaultMaxConnections = 1024
	DefaultThreads        = 4
	DefaultMaxItemSizeKB  = 1024
)

// GetWorkload returns the kind of workload that runs the memcached pods.
func (s *MemcachedSpec) GetWorkload() WorkloadKind {
	if s.Workload == "" {
		return DefaultWorkload
	}
	return s.Workload
}

// GetMemoryMB returns the memory memcached stores items in, in megabytes.
func (s *MemcachedSpec) GetMemoryMB() int32 { return orDefault(s.MemoryMB, DefaultMemoryMB) }

// GetMaxConnections returns how many connections memcached accepts at once.
func (s *MemcachedSpec) GetMaxConnections() int32 {
	return orDefault(s.MaxConnections, DefaultMaxConnections)
}

// GetThreads returns how many worker threads memcached runs.
func (s *MemcachedSpec) GetThreads() int32 { return orDefault(s.Threads, DefaultThreads) }

// GetMaxItemSizeKB returns the largest item memcached stores, in kilobytes.
func (s *MemcachedSpec) GetMaxItemSizeKB() int32 {
	return orDefault(s.MaxItemSizeKB, DefaultMaxItemSizeKB)
}

// MonitoringEnabled reports whether the Memcached asks for an exporter and a
// ServiceMonitor.
func (s *MemcachedSpec) MonitoringEnabled() bool {
	return s.Monitoring != nil && s.Monitoring.Enabled
}

// WarmRestartEnabled reports whether the memcached pods keep their cache
// across restarts in a memory file.
func (s *MemcachedSpec) WarmRestartEnabled() bool {
	return s.WarmRestart != nil && s.WarmRestart.Enabled
}

// PodDisruptionBudgetEnabled reports whether the Memcached asks for a
// PodDisruptionBudget: it does unless spec.podDisruptionBudget.enabled is
// false. One is created only for more than one pod.
func (s *MemcachedSpec) PodDisruptionBudgetEnabled() bool {
	return s.PodDisruptionBudget == nil || s.PodDisruptionBudget.Enabled == nil || *s.PodDisruptionBudget.Enabled
}

func orDefault(v, def int32) int32 {
	if v == 0 {
		return def
	}
	return v
}
