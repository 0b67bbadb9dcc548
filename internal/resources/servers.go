package resources

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Servers is the plan of a Memcached's servers: which run and which are
// listed. It is desired state, planned from what is observed
// (status.PlanServers): Build renders it into the workload and the servers
// ConfigMap, and status.Compute reports it.
type Servers struct {
	// List is the server list: status.serverList and the servers ConfigMap.
	List []string
	// StatefulSetReplicas is how many pods the StatefulSet runs: spec.size,
	// or, while the pods a scale-down removes drain, as many as it ran.
	StatefulSetReplicas int32
	// DrainingSince is when the scale-down that drains began, nil when
	// none does.
	DrainingSince *metav1.Time
	// RetirePreviousWorkload is set once the workload of spec.workload is
	// ready, so that a workload of the other kind, left from a switch, can go.
	RetirePreviousWorkload bool
	// RequeueAfter is when the drain ends, 0 when none waits.
	RequeueAfter time.Duration
}
