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

	DefaultConnectionsWarningPercent  = 80
	DefaultConnectionsCriticalPercent = 95
	DefaultEvictionsPerSecond         = 10
	DefaultAlertFor                   = "15m"
	DefaultRingDegradedFor            = "15m"

	DefaultProxyReplicas       = 2
	DefaultProxyMaxConnections = 4096
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

// AlertsEnabled reports whether the Memcached asks for alert rules: it does
// when monitoring is enabled, unless spec.monitoring.alerts.enabled is false.
func (s *MemcachedSpec) AlertsEnabled() bool {
	if !s.MonitoringEnabled() {
		return false
	}
	a := s.Monitoring.Alerts
	return a == nil || a.Enabled == nil || *a.Enabled
}

// GetAlerts returns spec.monitoring.alerts with the defaults filled in; nil
// when the Memcached asks for no alert rules.
func (s *MemcachedSpec) GetAlerts() *AlertsSpec {
	if !s.AlertsEnabled() {
		return nil
	}
	a := &AlertsSpec{}
	if s.Monitoring.Alerts != nil {
		// Labels are shared: the copy is read, not changed.
		c := *s.Monitoring.Alerts
		a = &c
	}
	a.ConnectionsWarningPercent = orDefault(a.ConnectionsWarningPercent, DefaultConnectionsWarningPercent)
	a.ConnectionsCriticalPercent = orDefault(a.ConnectionsCriticalPercent, DefaultConnectionsCriticalPercent)
	a.EvictionsPerSecond = orDefault(a.EvictionsPerSecond, DefaultEvictionsPerSecond)
	if a.For == "" {
		a.For = DefaultAlertFor
	}
	if a.RingDegradedFor == "" {
		a.RingDegradedFor = DefaultRingDegradedFor
	}
	return a
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

// ProxyEnabled reports whether the Memcached asks for the proxy tier.
func (s *MemcachedSpec) ProxyEnabled() bool {
	return s.Proxy != nil && s.Proxy.Enabled
}

// GetReplicas returns how many proxies run.
func (p *ProxySpec) GetReplicas() int32 { return orDefault(p.Replicas, DefaultProxyReplicas) }

// GetMaxConnections returns how many client connections each proxy accepts.
func (p *ProxySpec) GetMaxConnections() int32 {
	return orDefault(p.MaxConnections, DefaultProxyMaxConnections)
}

// The defaults of spec.extstore, the settings Grafana Loki recommends for
// its chunk caches.
const (
	DefaultExtstoreSize                 = "10Gi"
	DefaultExtstoreWriteBufferMB        = 32
	DefaultExtstoreIOThreads            = 10
	DefaultExtstoreItemSizeBytes        = 512
	DefaultExtstoreRecacheRate          = 0
	DefaultExtstoreMaxSleepMicroseconds = 10000
	DefaultExtstoreFreeMemoryPercent    = 10
)

// ExtstoreEnabled reports whether the memcached pods have a flash tier.
func (s *MemcachedSpec) ExtstoreEnabled() bool {
	return s.Extstore != nil && s.Extstore.Enabled
}

// GetSize returns the size of each pod's extstore volume.
func (e *ExtstoreSpec) GetSize() string {
	if e.Size == "" {
		return DefaultExtstoreSize
	}
	return e.Size
}

// GetWriteBufferMB returns the size of each of memcached's write buffers, in
// megabytes.
func (e *ExtstoreSpec) GetWriteBufferMB() int32 {
	return orDefault(e.WriteBufferMB, DefaultExtstoreWriteBufferMB)
}

// GetIOThreads returns how many threads read and write the extstore file.
func (e *ExtstoreSpec) GetIOThreads() int32 { return orDefault(e.IOThreads, DefaultExtstoreIOThreads) }

// GetItemSizeBytes returns the size above which an item's value may go to
// the extstore file.
func (e *ExtstoreSpec) GetItemSizeBytes() int32 {
	return orDefault(e.ItemSizeBytes, DefaultExtstoreItemSizeBytes)
}

// GetRecacheRate returns how many reads of a value on the file bring it back
// into memory once; 0 never does.
func (e *ExtstoreSpec) GetRecacheRate() int32 {
	if e.RecacheRate == nil {
		return DefaultExtstoreRecacheRate
	}
	return *e.RecacheRate
}

// GetMaxSleepMicroseconds returns the longest that extstore's background
// threads sleep.
func (e *ExtstoreSpec) GetMaxSleepMicroseconds() int32 {
	return orDefault(e.MaxSleepMicroseconds, DefaultExtstoreMaxSleepMicroseconds)
}

// GetFreeMemoryPercent returns the share of memoryMB that memcached keeps
// free by moving values to the file.
func (e *ExtstoreSpec) GetFreeMemoryPercent() int32 {
	if e.FreeMemoryPercent == nil {
		return DefaultExtstoreFreeMemoryPercent
	}
	return *e.FreeMemoryPercent
}
