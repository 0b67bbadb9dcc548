/*
Copyright The memcached-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// MemcachedSpec defines the desired state of a Memcached cluster.
//
// +kubebuilder:validation:XValidation:rule="self.maxItemSizeKB * 2 <= self.memoryMB * 1024",message="maxItemSizeKB may be at most half of memoryMB"
// +kubebuilder:validation:XValidation:rule="!has(self.preStopDelaySeconds) || !has(self.terminationGracePeriodSeconds) || self.preStopDelaySeconds < self.terminationGracePeriodSeconds",message="preStopDelaySeconds must be shorter than terminationGracePeriodSeconds"
// +kubebuilder:validation:XValidation:rule="!(has(self.monitoring) && has(self.monitoring.enabled) && self.monitoring.enabled && has(self.auth))",message="monitoring.enabled cannot be combined with auth: memcached_exporter cannot authenticate with SASL (prometheus/memcached_exporter#240)"
// +kubebuilder:validation:XValidation:rule="!(has(self.monitoring) && has(self.monitoring.enabled) && self.monitoring.enabled && has(self.tls) && has(self.tls.clientCASecretName)) || has(self.monitoring.tls)",message="monitoring.enabled with tls.clientCASecretName needs monitoring.tls.clientCertificateSecretName: memcached refuses the exporter without a client certificate"
// +kubebuilder:validation:XValidation:rule="!has(self.monitoring) || !has(self.monitoring.tls) || has(self.tls)",message="monitoring.tls needs tls: the exporter presents a client certificate only to a memcached that serves TLS"
// +kubebuilder:validation:XValidation:rule="!(has(self.proxy) && has(self.proxy.enabled) && self.proxy.enabled) || self.workload == 'StatefulSet'",message="proxy needs workload: StatefulSet: the proxies' routes name each server, and only a StatefulSet's pods keep their names"
// +kubebuilder:validation:XValidation:rule="!(has(self.proxy) && has(self.proxy.enabled) && self.proxy.enabled && has(self.tls))",message="proxy cannot be combined with tls: the official memcached image's proxy is built without TLS (--enable-proxy-tls), so it can neither serve TLS nor reach servers that require it"
// +kubebuilder:validation:XValidation:rule="!(has(self.proxy) && has(self.proxy.enabled) && self.proxy.enabled && has(self.auth))",message="proxy cannot be combined with auth: memcached's proxy cannot log in to the servers with SASL"
// +kubebuilder:validation:XValidation:rule="!(has(self.warmRestart) && has(self.warmRestart.enabled) && self.warmRestart.enabled) || self.workload == 'StatefulSet'",message="warmRestart needs workload: StatefulSet: the memory file lives on a volume of each pod's own"
// +kubebuilder:validation:XValidation:rule="!(has(self.warmRestart) && has(self.warmRestart.enabled) && self.warmRestart.enabled) || !has(self.terminationGracePeriodSeconds) || !has(self.preStopDelaySeconds) || self.terminationGracePeriodSeconds >= self.preStopDelaySeconds + 10 + self.memoryMB / 1024",message="with warmRestart, terminationGracePeriodSeconds must be at least preStopDelaySeconds + 10 + 1 per GiB of memoryMB, so that memcached has time to save its memory file"
// +kubebuilder:validation:XValidation:rule="!(has(self.extstore) && has(self.extstore.enabled) && self.extstore.enabled) || self.workload == 'StatefulSet'",message="extstore needs workload: StatefulSet: its file lives on a volume of each pod's own"
// +kubebuilder:validation:XValidation:rule="!(has(self.extstore) && has(self.extstore.enabled) && self.extstore.enabled && has(self.warmRestart) && has(self.warmRestart.enabled) && self.warmRestart.enabled)",message="extstore cannot be combined with warmRestart: memcached does not restore its memory file when extstore is on"
// +kubebuilder:validation:XValidation:rule="!(has(self.extstore) && has(self.extstore.enabled) && self.extstore.enabled) || self.maxItemSizeKB <= (has(self.extstore.writeBufferMB) ? self.extstore.writeBufferMB : 32) * 1024",message="with extstore, maxItemSizeKB may be at most extstore.writeBufferMB * 1024: memcached refuses items larger than its write buffers"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.warmRestart) || !has(oldSelf.warmRestart.enabled) || !oldSelf.warmRestart.enabled || !has(self.warmRestart) || !has(self.warmRestart.enabled) || !self.warmRestart.enabled || self.memoryMB == oldSelf.memoryMB",message="memoryMB cannot change while warmRestart is enabled: each pod's memory file volume is sized for it; turn warmRestart off first"
// +kubebuilder:validation:XValidation:rule=`!has(self.extraArgs) || !self.extraArgs.exists(i, a, (i > 0 && self.extraArgs[i - 1] == '-B' || a.startsWith('--protocol='))) || (!has(self.auth) || self.extraArgs.transformList(i, a, (i > 0 && self.extraArgs[i - 1] == '-B' || a.startsWith('--protocol=')), (i > 0 && self.extraArgs[i - 1] == '-B' ? a : a.substring(11)))[0] == 'ascii')`,messageExpression=`'extraArgs ' + '-B' + ' ' + self.extraArgs.transformList(i, a, (i > 0 && self.extraArgs[i - 1] == '-B' || a.startsWith('--protocol=')), (i > 0 && self.extraArgs[i - 1] == '-B' ? a : a.substring(11)))[0] + ': ' + 'with spec.auth, memcached speaks the ascii protocol only'`
// +kubebuilder:validation:XValidation:rule=`!has(self.extraArgs) || !self.extraArgs.exists(i, a, (i > 0 && self.extraArgs[i - 1] == '-o' || a.startsWith('--extended='))) || (!has(self.maxItemSizeKB) || self.maxItemSizeKB % 1024 == 0 || !self.extraArgs.transformList(i, a, (i > 0 && self.extraArgs[i - 1] == '-o' || a.startsWith('--extended=')), (i > 0 && self.extraArgs[i - 1] == '-o' ? a : a.substring(11)))[0].split(',').exists(e, e.split('=')[0] == 'no_chunked_items'))`,messageExpression=`'extraArgs ' + '-o' + ' ' + self.extraArgs.transformList(i, a, (i > 0 && self.extraArgs[i - 1] == '-o' || a.startsWith('--extended=')), (i > 0 && self.extraArgs[i - 1] == '-o' ? a : a.substring(11)))[0] + ': ' + '-o no_chunked_items needs spec.maxItemSizeKB to be a multiple of 1024'`
// +kubebuilder:validation:XValidation:rule=`!has(self.resources) || !has(self.resources.limits) || !('memory' in self.resources.limits) || (type(self.resources.limits['memory']) == int ? self.resources.limits['memory'] >= ((has(self.memoryMB) ? self.memoryMB : 64) + (has(self.memoryMB) ? self.memoryMB : 64) / 10 + 32 + (has(self.extstore) && has(self.extstore.enabled) && self.extstore.enabled ? 7 * (has(self.extstore.writeBufferMB) ? self.extstore.writeBufferMB : 32) : 0)) * 1048576 : !(size(self.resources.limits['memory']) <= 32 && !self.resources.limits['memory'].startsWith('-') && (self.resources.limits['memory'].lowerAscii() + 'eeee').indexOf('e') >= size(self.resources.limits['memory']) - 4 && isQuantity(self.resources.limits['memory'])) || quantity(self.resources.limits['memory']).compareTo(quantity('0').add(((has(self.memoryMB) ? self.memoryMB : 64) + (has(self.memoryMB) ? self.memoryMB : 64) / 10 + 32 + (has(self.extstore) && has(self.extstore.enabled) && self.extstore.enabled ? 7 * (has(self.extstore.writeBufferMB) ? self.extstore.writeBufferMB : 32) : 0)) * 1048576)) >= 0)`,messageExpression=`'resources.limits.memory ' + string(self.resources.limits['memory']) + ' is too small for memoryMB: memcached needs memoryMB + 10% + 32Mi, and 7 x extstore.writeBufferMB with extstore; raise the limit, or leave it out to have it derived'`
type MemcachedSpec struct {
	// size is the number of memcached pods. It defaults to 1; 0 stops every pod
	// but keeps the Memcached and what it owns.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +optional
	Size int32 `json:"size"`

	// workload is the kind of workload that runs the memcached pods.
	// Deployment, the default, gives pods new names and addresses whenever
	// they are replaced. StatefulSet gives them stable identities,
	// <name>-0 ... <name>-(size-1), each with a stable DNS name under the
	// headless Service: the server list that clients hash keys over does not
	// move when pods restart. Switching an existing Memcached from one to
	// the other starts the new workload and removes the old one only once
	// the new one is ready.
	// +kubebuilder:validation:Enum=Deployment;StatefulSet
	// +kubebuilder:default=Deployment
	// +optional
	Workload WorkloadKind `json:"workload,omitempty"`

	// minReadySeconds is how long a new memcached pod must be ready before
	// it counts as available and the rollout moves on to the next pod: pods
	// are replaced one at a time, so that most of the cache stays warm.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	MinReadySeconds *int32 `json:"minReadySeconds,omitempty"`

	// scaleDownDrainSeconds is, with workload StatefulSet, how long the pods
	// a scale-down removes keep running after status.serverList and the
	// <name>-servers ConfigMap stopped listing them, so that clients move
	// their keys away before the pods go.
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	ScaleDownDrainSeconds *int32 `json:"scaleDownDrainSeconds,omitempty"`

	// warmRestart keeps the cache across a pod restart: memcached saves its
	// memory to a file on a volume of the pod's own when it stops, and
	// reads it back when it starts. It needs workload StatefulSet.
	// +optional
	WarmRestart *WarmRestartSpec `json:"warmRestart,omitempty"`

	// extstore gives memcached a flash tier: a file on a volume of each
	// pod's own, where it keeps the values of items that no longer fit in
	// memoryMB, their keys and headers staying in memory. It needs workload
	// StatefulSet and cannot be combined with warmRestart.
	// +optional
	Extstore *ExtstoreSpec `json:"extstore,omitempty"`

	// image is the memcached container image. When unset, the pods run the
	// operator's image for Memcacheds that name none (its --memcached-image
	// flag, docker.io/library/memcached:1.6.39-alpine unless set, as clusters that pull from a
	// mirror do), and an operator upgrade that changes it rolls the pods.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// memoryMB is the memory memcached uses for items, in megabytes (memcached -m).
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	MemoryMB int32 `json:"memoryMB,omitempty"`

	// maxConnections is the maximum number of simultaneous client connections
	// (memcached -c).
	// +kubebuilder:default=1024
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	MaxConnections int32 `json:"maxConnections,omitempty"`

	// threads is the number of worker threads (memcached -t).
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	// +optional
	Threads int32 `json:"threads,omitempty"`

	// maxItemSizeKB is the largest item memcached stores, in kilobytes
	// (memcached -I): a multiple of 512, at most half of memoryMB.
	// +kubebuilder:default=1024
	// +kubebuilder:validation:Minimum=512
	// +kubebuilder:validation:Maximum=1048576
	// +kubebuilder:validation:XValidation:rule="self % 512 == 0",message="maxItemSizeKB must be a multiple of 512: memcached stores large items in chunks of 512 KB and refuses to start with another item size"
	// +optional
	MaxItemSizeKB int32 `json:"maxItemSizeKB,omitempty"`

	// verbosity is memcached's logging level: 0 logs errors only, 1 adds
	// warnings and client errors (-v), 2 adds every request and response (-vv).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2
	// +optional
	Verbosity int32 `json:"verbosity,omitempty"`

	// extraArgs are more memcached options, passed after the ones the
	// operator renders. Only options that tune memcached are accepted, each
	// as its own element ("-R", "20"; "--disable-cas"; "-o",
	// "lru_crawler,hash_algorithm=murmur3"): options that another field sets
	// (-m, -c, -t, -I, -v, -e, -Y, -Z), that change where or how memcached
	// listens or who may connect (-p, -U, -l, -s, -o ssl_*), or that make it
	// exit, daemonize or write files are refused at admission, with a message
	// that says why or which field to use instead. Each option is written in
	// one form only: short options alone in their element, long ones in full
	// with their value after "=". The operator checks the arguments again: a
	// Memcached stored before a rule refused its arguments is reported in the
	// Degraded condition, and its running pods are left as they are.
	// +listType=atomic
	// +optional
	ExtraArgs ExtraArgs `json:"extraArgs,omitempty"`

	// resources are the memcached container's compute resources. When no
	// memory limit is given, it is memoryMB + 10% + 32Mi, plus, with
	// extstore, 7 x extstore.writeBufferMB for its buffers, and the memory
	// request defaults to the limit. When no CPU request is given, it is the
	// CPU limit if one is given, else 50m: enough for a namespace whose
	// ResourceQuota sets requests.cpu to admit the pods, and small because
	// memcached's CPU use follows its traffic, not spec.threads; set it for a
	// busy cache. There is no CPU limit unless given. A memory limit below
	// that is refused at admission; in a Memcached stored
	// before, the operator reports it in the Degraded condition and leaves
	// the running pods as they are.
	// +optional
	Resources *ResourceRequirements `json:"resources,omitempty"`

	// nodeSelector constrains the memcached pods to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations let the memcached pods run on tainted nodes.
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity sets the memcached pods' scheduling constraints.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// imagePullSecrets name Secrets in the Memcached's namespace that
	// authenticate the pulls of the memcached and exporter images, as from a
	// private mirror.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	ImagePullSecrets []ImagePullSecret `json:"imagePullSecrets,omitempty"`

	// priorityClassName is the memcached pods' priority class.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// podLabels are added to the memcached pods' labels. They may not set the
	// app.kubernetes.io/name, instance or managed-by labels, which the
	// operator uses to select its pods.
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="!self.exists(k, k in ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by'])",message="podLabels may not set app.kubernetes.io/name, app.kubernetes.io/instance or app.kubernetes.io/managed-by: the operator selects its pods by them"
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`

	// podAnnotations are added to the memcached pods' annotations.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`

	// topologySpreadConstraints spread the memcached pods. When left out, the
	// pods are spread evenly over zones (topology.kubernetes.io/zone) where
	// possible; an empty list spreads them by nothing but affinity.
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// terminationGracePeriodSeconds is how long a memcached pod has to stop
	// once asked to, preStopDelaySeconds included.
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	// +optional
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`

	// preStopDelaySeconds is how long a stopping memcached pod keeps serving
	// before memcached is stopped, so that clients and Service endpoints stop
	// sending it requests first. It must be shorter than
	// terminationGracePeriodSeconds.
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	PreStopDelaySeconds *int32 `json:"preStopDelaySeconds,omitempty"`

	// podDisruptionBudget limits voluntary disruptions, such as node drains, of
	// the memcached pods. When left out, at most one pod is unavailable at a
	// time when spec.size is above 1; there is no budget when it is 1 or 0.
	// +optional
	PodDisruptionBudget *PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitempty"`

	// auth turns on memcached's authentication: clients must log in with one
	// of the username/password pairs of a Secret before any command.
	// +optional
	Auth *AuthSpec `json:"auth,omitempty"`

	// tls makes memcached accept TLS connections only.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

	// networkPolicy, when set, admits connections to memcached only from the
	// peers it lists.
	// +optional
	NetworkPolicy *NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// monitoring runs a Prometheus exporter next to memcached.
	// +optional
	Monitoring *MonitoringSpec `json:"monitoring,omitempty"`

	// proxy runs a tier of memcached proxies in front of the servers, so that
	// a client that takes one address gets the whole cache: with it, the
	// Service <name> sends clients to the proxies, once one is ready, which
	// route each key to its server; <name>-headless and the server list stay
	// for clients that spread keys over the servers themselves. It needs
	// workload StatefulSet, and an image of memcached 1.6.38 or later built
	// with the proxy, as the official image is.
	// +optional
	Proxy *ProxySpec `json:"proxy,omitempty"`
}

// WorkloadKind is the kind of workload that runs the memcached pods.
type WorkloadKind string

const (
	// WorkloadDeployment runs the memcached pods as a Deployment.
	WorkloadDeployment WorkloadKind = "Deployment"
	// WorkloadStatefulSet runs the memcached pods as a StatefulSet, with
	// stable names and DNS names.
	WorkloadStatefulSet WorkloadKind = "StatefulSet"
)

// WarmRestartSpec configures memcached's warm restart.
type WarmRestartSpec struct {
	// enabled gives each memcached pod a PersistentVolumeClaim for its memory
	// file (memcached -e), sized from memoryMB. Stopping a pod saves the
	// cache to it, and the pod that replaces it reads it back. Changing
	// memoryMB, maxItemSizeKB, the image or the slab options in extraArgs
	// starts the next pods with an empty cache.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// storageClassName is the StorageClass of the memory files' volumes;
	// the cluster's default one when left out.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// ExtstoreSpec configures extstore, memcached's flash tier (memcached -o
// ext_path and the ext_* options). Its defaults are the settings Grafana
// Loki recommends for its chunk caches.
//
// +kubebuilder:validation:XValidation:rule="!has(self.enabled) || !self.enabled || !has(oldSelf.enabled) || !oldSelf.enabled || (has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName))",message="extstore.storageClassName cannot change while extstore is enabled: each pod's volume was made of it; turn extstore off, then on with the new one (docs/extstore.md)"
// +kubebuilder:validation:XValidation:rule="!has(self.enabled) || !self.enabled || !has(oldSelf.enabled) || !oldSelf.enabled || !self.size.matches('^[1-9][0-9]{0,6}(Mi|Gi|Ti)$') || !oldSelf.size.matches('^[1-9][0-9]{0,6}(Mi|Gi|Ti)$') || (int(self.size.substring(0, size(self.size) - 2)) * (self.size.endsWith('Ti') ? 1048576 : self.size.endsWith('Gi') ? 1024 : 1)) >= (int(oldSelf.size.substring(0, size(oldSelf.size) - 2)) * (oldSelf.size.endsWith('Ti') ? 1048576 : oldSelf.size.endsWith('Gi') ? 1024 : 1))",message="extstore.size cannot shrink while extstore is enabled: a volume cannot shrink; grow it, or turn extstore off, then on with the smaller size (docs/extstore.md)"
// +kubebuilder:validation:XValidation:rule="!has(self.enabled) || !self.enabled || !self.size.matches('^[1-9][0-9]{0,6}(Mi|Gi|Ti)$') || (int(self.size.substring(0, size(self.size) - 2)) * (self.size.endsWith('Ti') ? 1048576 : self.size.endsWith('Gi') ? 1024 : 1)) * 9 / 10 >= 64",message="extstore.size is too small: memcached's file, 90% of the volume, must hold at least one 64 MiB page (a volume of at least 72Mi)"
// +kubebuilder:validation:XValidation:rule="!has(self.enabled) || !self.enabled || !self.size.matches('^[1-9][0-9]{0,6}(Mi|Gi|Ti)$') || (int(self.size.substring(0, size(self.size) - 2)) * (self.size.endsWith('Ti') ? 1048576 : self.size.endsWith('Gi') ? 1024 : 1)) * 9 / 10 / 64 < 65535",message="extstore.size is too large: memcached's file, 90% of the volume, may hold at most 65534 pages of 64 MiB (a volume of at most 4551Gi)"
type ExtstoreSpec struct {
	// enabled gives each memcached pod a PersistentVolumeClaim
	// extstore-<size>-<name>-<i> of size, and has memcached keep a file of
	// 90% of it there (-o ext_path): the values of items that memoryMB
	// cannot hold are written to it, and read back when asked for. The
	// file is emptied whenever memcached starts: it extends the cache of a
	// running pod, it does not keep it across restarts. Turning extstore
	// off recreates the StatefulSet, leaving its pods, which are then
	// replaced one at a time; running pods cannot gain its volume, so turn
	// it on with size 0 or when creating the Memcached (docs/extstore.md).
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// size is the size of each pod's volume, a whole number of Mi, Gi or Ti,
	// e.g. 100Gi. memcached's file takes 90% of it, the rest is left to the
	// filesystem. While extstore is enabled it can grow, not shrink: where
	// the StorageClass allows volume expansion, each pod's claim is expanded
	// in place, then the pods restart one at a time with the larger file;
	// the claims keep their name, extstore-<the size they were created
	// with>-<name>-<i>. The Memcached is Degraded while the StorageClass
	// refuses it, and memcached keeps its file until then.
	// +kubebuilder:default="10Gi"
	// +kubebuilder:validation:MaxLength=9
	// +kubebuilder:validation:XValidation:rule="self.matches('^[1-9][0-9]{0,6}(Mi|Gi|Ti)$')",message="extstore.size must be a whole number of Mi, Gi or Ti, such as 100Gi"
	// +optional
	Size string `json:"size,omitempty"`

	// storageClassName is the StorageClass of the volumes, e.g. one of local
	// NVMe disks; the cluster's default one when left out. It cannot
	// change while extstore is enabled.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// writeBufferMB is the size of each of memcached's write buffers, in
	// megabytes (ext_wbuf_size). memcached keeps six of them, and one more
	// to compact its file, outside memoryMB: the derived memory limit adds
	// 7 x writeBufferMB. It must
	// divide the 64 MiB pages of the file, and hold the largest item
	// (maxItemSizeKB).
	// +kubebuilder:default=32
	// +kubebuilder:validation:Enum=2;4;8;16;32;64
	// +optional
	WriteBufferMB int32 `json:"writeBufferMB,omitempty"`

	// ioThreads is the number of threads that read and write the file
	// (ext_threads).
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	IOThreads int32 `json:"ioThreads,omitempty"`

	// itemSizeBytes is the size above which an item's value may go to the
	// file (ext_item_size): smaller items stay in memory, where their header
	// would take about as much room as their value.
	// +kubebuilder:default=512
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	ItemSizeBytes int32 `json:"itemSizeBytes,omitempty"`

	// itemAgeSeconds, when set, is how long an item must have gone unread
	// before its value may go to the file (ext_item_age); by default items
	// go as memory fills up, whatever their age.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=31536000
	// +optional
	ItemAgeSeconds *int32 `json:"itemAgeSeconds,omitempty"`

	// recacheRate is how many reads of a value on the file bring it back
	// into memory once (ext_recache_rate); 0 never does.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	RecacheRate *int32 `json:"recacheRate,omitempty"`

	// maxSleepMicroseconds is the longest that memcached's background
	// threads, which move values to the file and compact it, sleep
	// (ext_max_sleep).
	// +kubebuilder:default=10000
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	MaxSleepMicroseconds int32 `json:"maxSleepMicroseconds,omitempty"`

	// freeMemoryPercent is the share of memoryMB that memcached keeps free by
	// moving values to the file, so that new items find room without an
	// eviction (slab_automove_freeratio, as a percentage).
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=50
	// +optional
	FreeMemoryPercent *int32 `json:"freeMemoryPercent,omitempty"`
}

// ResourceRequirements are a container's compute resources, as in core/v1,
// with quantities that the operator and the API server can always read.
type ResourceRequirements struct {
	// limits are the most compute resources the container may use.
	// +kubebuilder:validation:MaxProperties=6
	// +kubebuilder:validation:XValidation:rule="self.all(k, type(self[k]) == int ? self[k] >= 0 : size(self[k]) <= 32 && !self[k].startsWith('-') && (self[k].lowerAscii() + 'eeee').indexOf('e') >= size(self[k]) - 4 && isQuantity(self[k]))",message="limits must be quantities such as 500m, 64Mi or 1e9: at least 0, at most 32 characters, with a whole exponent of at most 2 digits"
	// +optional
	Limits corev1.ResourceList `json:"limits,omitempty"`

	// requests are the compute resources the container is scheduled with.
	// +kubebuilder:validation:MaxProperties=6
	// +kubebuilder:validation:XValidation:rule="self.all(k, type(self[k]) == int ? self[k] >= 0 : size(self[k]) <= 32 && !self[k].startsWith('-') && (self[k].lowerAscii() + 'eeee').indexOf('e') >= size(self[k]) - 4 && isQuantity(self[k]))",message="requests must be quantities such as 500m, 64Mi or 1e9: at least 0, at most 32 characters, with a whole exponent of at most 2 digits"
	// +optional
	Requests corev1.ResourceList `json:"requests,omitempty"`
}

// PodDisruptionBudgetSpec configures the PodDisruptionBudget of a Memcached.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.maxUnavailable) && has(self.minAvailable))",message="set at most one of maxUnavailable and minAvailable"
type PodDisruptionBudgetSpec struct {
	// enabled creates the PodDisruptionBudget when spec.size is above 1.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// maxUnavailable is how many memcached pods may be disrupted at once, a
	// number or a percentage. It defaults to 1 when minAvailable is not set.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 && self <= 2147483647 : self.matches('^(100|[1-9]?[0-9])%$')",message="maxUnavailable must be a number from 0 to 2147483647 or a percentage from 0% to 100%"
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// minAvailable is how many memcached pods must stay available, a number or
	// a percentage.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 && self <= 2147483647 : self.matches('^(100|[1-9]?[0-9])%$')",message="minAvailable must be a number from 0 to 2147483647 or a percentage from 0% to 100%"
	// +optional
	MinAvailable *intstr.IntOrString `json:"minAvailable,omitempty"`
}

// ImagePullSecret names a Secret of type kubernetes.io/dockerconfigjson.
type ImagePullSecret struct {
	// name is the Secret's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`
}

// AuthSpec configures memcached's authentication.
type AuthSpec struct {
	// secretName is the name of a Secret in the Memcached's namespace. Each of
	// its keys is a username, and the key's value that user's password. An
	// init container of each memcached pod renders memcached's auth file from
	// it into a volume in memory; changing the Secret restarts the memcached
	// pods, one at a time. The init container runs /bin/sh of the memcached
	// image, which the official images have.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	SecretName string `json:"secretName"`
}

// TLSSpec configures memcached's TLS.
type TLSSpec struct {
	// secretName is the name of a kubernetes.io/tls Secret in the Memcached's
	// namespace holding memcached's certificate (tls.crt) and key (tls.key).
	// Changing the Secret, e.g. when the certificate is renewed, restarts the
	// memcached pods, one at a time.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	SecretName string `json:"secretName"`

	// clientCASecretName is the name of a Secret in the Memcached's namespace
	// whose ca.crt holds the certificate authorities of client certificates.
	// When set, memcached refuses clients without a certificate signed by one
	// of them.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	ClientCASecretName string `json:"clientCASecretName,omitempty"`
}

// NetworkPolicySpec configures the NetworkPolicy in front of the memcached pods.
type NetworkPolicySpec struct {
	// allowedFrom are the peers that may connect to memcached's port. When
	// empty, only the memcached pods of this Memcached may.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	AllowedFrom []networkingv1.NetworkPolicyPeer `json:"allowedFrom,omitempty"`

	// metricsAllowedFrom are the peers that may scrape the exporter's port
	// when monitoring is enabled, such as Prometheus' namespace. The
	// exporter itself may always connect to the memcached pods.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	MetricsAllowedFrom []networkingv1.NetworkPolicyPeer `json:"metricsAllowedFrom,omitempty"`
}

// MonitoringSpec configures the memcached exporter.
type MonitoringSpec struct {
	// enabled runs the Prometheus memcached exporter in a Deployment of its
	// own, <name>-exporter, behind the Service <name>-exporter: it serves
	// each memcached pod's metrics on port 9150 (named metrics) at
	// /scrape?target=<pod address>:11211. When the cluster has the
	// monitoring.coreos.com/v1 ServiceMonitor API, the operator also creates a
	// ServiceMonitor named after the Memcached that has Prometheus scrape
	// every pod that way. The exporter runs on the nodes the memcached pods
	// may run on: it takes their nodeSelector, tolerations, priority class
	// and node affinity. The memcached pods do not change: turning
	// monitoring on or off, or changing any of its settings, never restarts
	// them.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// exporterImage is the exporter's container image. When unset, the
	// exporter runs the operator's image for Memcacheds that name none (its
	// --exporter-image flag, docker.io/prom/memcached-exporter:v0.15.4 unless set).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	ExporterImage string `json:"exporterImage,omitempty"`

	// exporterResources are the exporter container's compute resources.
	// Without them, it requests 10m CPU and 32Mi of memory, and is limited to
	// 64Mi of memory.
	// +optional
	ExporterResources *ResourceRequirements `json:"exporterResources,omitempty"`

	// interval is how often Prometheus scrapes the exporter, e.g. 30s. When
	// left out, Prometheus' own interval applies.
	// +kubebuilder:validation:Pattern=`^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`
	// +optional
	Interval string `json:"interval,omitempty"`

	// serviceMonitorLabels are added to the ServiceMonitor's labels, e.g. the
	// ones a Prometheus selects ServiceMonitors by, and to the
	// PrometheusRule's, which a Prometheus usually selects by the same ones.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	ServiceMonitorLabels map[string]string `json:"serviceMonitorLabels,omitempty"`

	// tls configures the exporter's TLS connections to memcached, which it
	// makes whenever spec.tls is set. It is needed when memcached asks
	// clients for a certificate (spec.tls.clientCASecretName).
	// +optional
	TLS *MonitoringTLSSpec `json:"tls,omitempty"`

	// alerts configures the alert rules of this Memcached. With monitoring
	// enabled and alerts not turned off, and when the cluster has the
	// monitoring.coreos.com/v1 PrometheusRule API, the operator creates a
	// PrometheusRule named after the Memcached: docs/monitoring.md says what
	// each alert means and what to do.
	// +optional
	Alerts *AlertsSpec `json:"alerts,omitempty"`
}

// ProxySpec configures the proxy tier of a Memcached.
type ProxySpec struct {
	// enabled runs the proxies: a Deployment <name>-proxy of memcached in
	// proxy mode, with routes rendered from status.serverList into the
	// ConfigMap <name>-proxy. When the server list changes, the proxies are
	// replaced one at a time, each new one ready before an old one goes.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// replicas is how many proxies run.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// maxConnections is how many client connections each proxy accepts.
	// +kubebuilder:default=4096
	// +kubebuilder:validation:Minimum=16
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	MaxConnections int32 `json:"maxConnections,omitempty"`

	// resources are the proxy container's compute resources. Without them,
	// it requests 50m CPU and 64Mi of memory, and is limited to 128Mi of
	// memory.
	// +optional
	Resources *ResourceRequirements `json:"resources,omitempty"`
}

// ProxyStatus is what the operator observes of the proxy tier.
type ProxyStatus struct {
	// address is where clients that take one address connect: the Service
	// <name>, in front of the proxies once one is ready (in front of the
	// servers until then).
	// +optional
	Address string `json:"address,omitempty"`

	// replicas is how many proxies exist.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is how many proxies are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
}

// MonitoringTLSSpec configures how the exporter connects to memcached over
// TLS. The exporter encrypts its connections but does not verify memcached's
// certificate, whose names seldom list the pods' addresses it dials.
type MonitoringTLSSpec struct {
	// clientCertificateSecretName is the name of a kubernetes.io/tls Secret
	// in the Memcached's namespace whose certificate (tls.crt) and key
	// (tls.key) the exporter presents to memcached. The certificate must be
	// signed by a certificate authority of spec.tls.clientCASecretName; it
	// may be the one the applications use. Changing the Secret restarts the
	// exporter, never memcached.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	ClientCertificateSecretName string `json:"clientCertificateSecretName"`
}

// AlertsSpec configures the alert rules of a Memcached. Each alert covers the
// series of this Memcached only: those with its namespace and the label
// memcached=<name>, which its ServiceMonitor sets.
// +kubebuilder:validation:XValidation:rule="self.connectionsWarningPercent < self.connectionsCriticalPercent",message="connectionsWarningPercent must be below connectionsCriticalPercent"
type AlertsSpec struct {
	// enabled creates the PrometheusRule; false removes it, and leaves the
	// exporter and the ServiceMonitor.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// connectionsWarningPercent is the share of memcached's connection limit
	// (-c, maxConnections) in use above which MemcachedConnectionLimitApproaching
	// fires with severity warning.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=99
	// +kubebuilder:default=80
	// +optional
	ConnectionsWarningPercent int32 `json:"connectionsWarningPercent,omitempty"`

	// connectionsCriticalPercent is the share of memcached's connection limit
	// in use above which MemcachedConnectionLimitApproaching fires with
	// severity critical. It must be above connectionsWarningPercent.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=95
	// +optional
	ConnectionsCriticalPercent int32 `json:"connectionsCriticalPercent,omitempty"`

	// evictionsPerSecond is the rate of evictions of one memcached server,
	// over 5 minutes, above which MemcachedEvictions fires. A full cache
	// evicts as a matter of course; a sustained rate above it says the
	// working set does not fit in memoryMB.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=10
	// +optional
	EvictionsPerSecond int32 `json:"evictionsPerSecond,omitempty"`

	// for is how long MemcachedDown, MemcachedConnectionLimitApproaching,
	// MemcachedOutOfMemoryErrors and MemcachedEvictions must hold before they
	// fire, as hours, minutes and seconds, e.g. 15m or 1h30m.
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]{1,4}h)?([0-9]{1,6}m)?([0-9]{1,8}s)?)$') && self != ''",message="for must be a duration of hours, minutes and seconds, e.g. 15m or 1h30m"
	// +kubebuilder:default="15m"
	// +optional
	For string `json:"for,omitempty"`

	// ringDegradedFor is how long fewer memcached servers than size must be
	// ready before MemcachedRingDegraded fires, e.g. 15m. A rollout or a
	// rescheduled pod takes a server out for less.
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]{1,4}h)?([0-9]{1,6}m)?([0-9]{1,8}s)?)$') && self != ''",message="ringDegradedFor must be a duration of hours, minutes and seconds, e.g. 15m or 1h30m"
	// +kubebuilder:default="15m"
	// +optional
	RingDegradedFor string `json:"ringDegradedFor,omitempty"`

	// labels are added to every alert, e.g. team=cache for Alertmanager's
	// routing. Their names are Prometheus label names; severity, alertname,
	// namespace and memcached are set by the operator and cannot be given.
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-zA-Z_][a-zA-Z0-9_]*$') && !k.startsWith('__'))",message="labels must be Prometheus label names: letters, digits and underscores, not starting with a digit nor with __"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k in ['alertname', 'severity', 'namespace', 'memcached']))",message="labels cannot set alertname, severity, namespace nor memcached: the operator sets them"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !self[k].contains('{{'))",message="label values cannot hold {{: Prometheus reads them as templates, and a value that is not a valid one drops every alert of the rule"
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// Condition types of a Memcached.
const (
	// ConditionAvailable is True when every pod of spec.size is ready.
	ConditionAvailable = "Available"
	// ConditionProgressing is True while pods are being created, removed or
	// replaced to reach the spec.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when the operator cannot reach the spec:
	// pods cannot be created, a rollout is stuck, or applying failed.
	ConditionDegraded = "Degraded"
	// ConditionMonitoringReady is reported when spec.monitoring is enabled: it
	// is True when the ServiceMonitor is in place, and False, with the reason,
	// when it cannot be, e.g. because the cluster lacks the ServiceMonitor API.
	ConditionMonitoringReady = "MonitoringReady"
)

// MemcachedStatus defines the observed state of a Memcached cluster.
type MemcachedStatus struct {
	// observedGeneration is the metadata.generation of the Memcached that the
	// operator last reconciled successfully.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// replicas is the number of memcached pods that exist, ready or not.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is the number of memcached pods that are ready.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// selector is the label selector of the memcached pods, in string form,
	// for the /scale subresource.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Selector string `json:"selector,omitempty"`

	// nodes are the names of the memcached pods, sorted.
	// +listType=atomic
	// +optional
	Nodes []string `json:"nodes,omitempty"`

	// serverList is what a memcached client is configured with, also
	// published in the ConfigMap <name>-servers. With workload StatefulSet, it
	// is the stable DNS name and port of each pod,
	// <name>-<i>.<name>-headless.<namespace>.svc:11211, in the order of i: a
	// pod that restarts keeps its place, a new pod is added once it is ready,
	// and a scale-down removes the last ones before their pods go. With
	// workload Deployment, it is the address (ip:port) of every ready pod, in
	// the order of the pods' names.
	// +listType=atomic
	// +optional
	ServerList []string `json:"serverList,omitempty"`

	// drainingSince is when a scale-down of a StatefulSet removed pods from
	// serverList, rounded up to the second; they are stopped
	// scaleDownDrainSeconds later.
	// +optional
	DrainingSince *metav1.Time `json:"drainingSince,omitempty"`

	// conditions are Available, Progressing and Degraded, and MonitoringReady
	// when monitoring is enabled.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// proxy is the state of the proxy tier, with spec.proxy enabled.
	// +optional
	Proxy *ProxyStatus `json:"proxy,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=mc
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.size,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:printcolumn:name="Size",type=integer,JSONPath=".spec.size"
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=".status.readyReplicas"
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=".status.conditions[?(@.type==\"Available\")].status"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 54 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label of at most 54 characters starting with a letter: it names the Services, and <name>-headless must fit in 63 characters"
// +kubebuilder:validation:XValidation:rule="self.spec.workload != 'StatefulSet' || size(self.metadata.name) <= 52",message="with workload StatefulSet, metadata.name may have at most 52 characters: it names the StatefulSet, whose pods' controller-revision-hash label adds 11"

// Memcached is a memcached cluster: a set of memcached pods managed by the operator.
type Memcached struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec defines the desired state of the Memcached cluster.
	// +required
	Spec MemcachedSpec `json:"spec"`

	// status defines the observed state of the Memcached cluster.
	// +optional
	Status MemcachedStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// MemcachedList contains a list of Memcached.
type MemcachedList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []Memcached `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &Memcached{}, &MemcachedList{})
		return nil
	})
}
