/*
Copyright 2026.

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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// MemcachedSpec defines the desired state of a Memcached cluster.
//
// +kubebuilder:validation:XValidation:rule="self.maxItemSizeKB * 2 <= self.memoryMB * 1024",message="maxItemSizeKB may be at most half of memoryMB"
type MemcachedSpec struct {
	// size is the number of memcached pods. It defaults to 1; 0 stops every pod
	// but keeps the Memcached and what it owns.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +optional
	Size int32 `json:"size"`

	// image is the memcached container image.
	// +kubebuilder:default="memcached:1.6.39-alpine"
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
	// (memcached -I). It may be at most half of memoryMB.
	// +kubebuilder:default=1024
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	MaxItemSizeKB int32 `json:"maxItemSizeKB,omitempty"`

	// verbosity is memcached's logging level: 0 logs errors only, 1 adds
	// warnings and client errors (-v), 2 adds every request and response (-vv).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2
	// +optional
	Verbosity int32 `json:"verbosity,omitempty"`

	// extraArgs are passed to memcached after the arguments the operator
	// renders. They may not set the port (-p), UDP (-U) or memory (-m), which
	// the operator owns.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.all(a, !a.matches('^(-[a-zA-Z]*[pUm]|--(port|udp-port|memory-limit)(=|$))'))",message="extraArgs may not set -p/--port, -U/--udp-port or -m/--memory-limit: the operator sets the port, turns UDP off and sets memory from memoryMB"
	// +listType=atomic
	// +optional
	ExtraArgs []string `json:"extraArgs,omitempty"`

	// resources are the memcached container's compute resources. When no
	// memory limit is given, it is memoryMB + 10% + 32Mi, and the memory
	// request defaults to the limit. A memory limit below memoryMB + 10% + 32Mi
	// is refused: the operator reports it in the Degraded condition and leaves
	// the running pods as they are.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

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

	// serverList is the address (ip:port) of every ready memcached pod, in
	// the order of the pods' names: what a memcached client is configured with.
	// +listType=atomic
	// +optional
	ServerList []string `json:"serverList,omitempty"`

	// conditions are Available, Progressing and Degraded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
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
