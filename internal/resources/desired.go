package resources

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// Kind is a kind of object the operator creates for Memcacheds.
type Kind struct {
	schema.GroupVersionKind
	// Full is set for the kinds whose spec or status the operator reads,
	// the workloads. Of the others it reads only the metadata.
	Full bool
	// Optional is set for the kinds whose API a cluster may not have.
	Optional bool
	// Recreate is set for the kinds whose spec has fields that cannot be
	// changed: the operator deletes the object, leaving what it owns, and
	// creates it anew.
	Recreate bool
}

// The kinds of objects the operator creates.
var (
	DeploymentKind     = Kind{GroupVersionKind: appsv1.SchemeGroupVersion.WithKind("Deployment"), Full: true}
	StatefulSetKind    = Kind{GroupVersionKind: appsv1.SchemeGroupVersion.WithKind("StatefulSet"), Full: true, Recreate: true}
	ServiceKind        = Kind{GroupVersionKind: corev1.SchemeGroupVersion.WithKind("Service")}
	ConfigMapKind      = Kind{GroupVersionKind: corev1.SchemeGroupVersion.WithKind("ConfigMap")}
	PDBKind            = Kind{GroupVersionKind: policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget")}
	NetworkPolicyKind  = Kind{GroupVersionKind: networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy")}
	ServiceMonitorKind = Kind{GroupVersionKind: ServiceMonitorGVK, Optional: true}
	PrometheusRuleKind = Kind{GroupVersionKind: PrometheusRuleGVK, Optional: true}

	// Kinds are all of them.
	Kinds = []Kind{DeploymentKind, StatefulSetKind, ServiceKind, ConfigMapKind, PDBKind, NetworkPolicyKind, ServiceMonitorKind, PrometheusRuleKind}
)

// Inputs are what the objects of a Memcached are built from besides its spec.
type Inputs struct {
	// Digests are digests of the Secrets the pods read.
	Digests SecretDigests
	// Servers is the plan of the servers: how many pods the workload runs
	// and the list the servers ConfigMap publishes.
	Servers Servers
	// PlatformAssignsUID leaves the pods' user to the platform, such as
	// OpenShift's restricted-v2, instead of the image's user.
	PlatformAssignsUID bool
	// Images are the images of a Memcached that names none.
	Images Images
	// RunbookBaseURL is where the runbooks of the alerts are;
	// DefaultRunbookBaseURL when empty.
	RunbookBaseURL string
	// ProxiesReady is set when a proxy of spec.proxy is ready: only then
	// does the Service <name> send clients to the proxies.
	ProxiesReady bool
	// HoldExporter leaves the exporter's Deployment as it is, neither
	// applied nor deleted: set when its client certificate cannot be used.
	HoldExporter bool
	// ExtstoreClaim is the name of the claim template of the extstore
	// volumes that exist: the name they were created with, kept as they
	// grow. memcached.ExtstoreClaimName of the spec when empty.
	ExtstoreClaim string
}

// Images are the images the operator runs when a Memcached names none.
type Images struct {
	// Memcached is the memcached image; DefaultImage when empty.
	Memcached string
	// Exporter is the exporter's image; DefaultExporterImage when empty.
	Exporter string
}

// Ref names an object of a Memcached.
type Ref struct {
	Kind Kind
	types.NamespacedName
}

func (r Ref) String() string { return r.Kind.Kind + " " + r.Name }

// Object is an object the operator applies: its apply configuration,
// carrying AppliedHashAnnotation.
type Object struct {
	Kind Kind
	*unstructured.Unstructured
}

// Ref returns the kind and name of o.
func (o Object) Ref() Ref {
	return Ref{Kind: o.Kind, NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}
}

// Desired is the state a Memcached asks for.
type Desired struct {
	// Objects are the objects to apply, in the order to apply them.
	Objects []Object
	// Absent are the objects the Memcached may have had that it no longer
	// asks for: the operator deletes those it controls.
	Absent []Ref
}

// Build returns every object mc asks for, and names those it may have had but
// no longer asks for. A workload of the other kind than spec.workload is
// neither applied nor deleted until in.Servers.RetirePreviousWorkload.
func Build(mc *cachev1alpha1.Memcached, in Inputs) Desired {
	var d Desired
	add := func(kind Kind, name string, object any) {
		if object == nil {
			d.Absent = append(d.Absent, Ref{Kind: kind, NamespacedName: types.NamespacedName{Namespace: mc.Namespace, Name: name}})
			return
		}
		d.Objects = append(d.Objects, Object{Kind: kind, Unstructured: withAppliedHash(object)})
	}
	switch mc.Spec.GetWorkload() {
	case cachev1alpha1.WorkloadStatefulSet:
		add(StatefulSetKind, mc.Name, statefulSet(mc, in))
		if in.Servers.RetirePreviousWorkload {
			add(DeploymentKind, mc.Name, nil)
		}
	default:
		add(DeploymentKind, mc.Name, deployment(mc, in))
		if in.Servers.RetirePreviousWorkload {
			add(StatefulSetKind, mc.Name, nil)
		}
	}
	// The builders of optional objects return a typed nil when mc does not
	// ask for the object; orNil turns it into an untyped one.
	add(ServiceKind, mc.Name, service(mc, in.ProxiesReady))
	add(ServiceKind, HeadlessServiceName(mc), headlessService(mc))
	add(ConfigMapKind, ServersConfigMapName(mc), serversConfigMap(mc, in.Servers.List))
	add(PDBKind, mc.Name, orNil(podDisruptionBudget(mc)))
	add(NetworkPolicyKind, mc.Name, orNil(networkPolicy(mc)))
	add(NetworkPolicyKind, ExporterName(mc), orNil(exporterNetworkPolicy(mc)))
	if !in.HoldExporter {
		add(DeploymentKind, ExporterName(mc), orNil(exporterDeployment(mc, in)))
	}
	add(ServiceKind, ExporterName(mc), orNil(exporterService(mc)))
	routes := proxyRoutes(in.Servers.List)
	add(ConfigMapKind, ProxyName(mc), orNil(proxyConfigMap(mc, routes)))
	add(DeploymentKind, ProxyName(mc), orNil(proxyDeployment(mc, in, routes)))
	add(PDBKind, ProxyName(mc), orNil(proxyDisruptionBudget(mc)))
	add(NetworkPolicyKind, ProxyName(mc), orNil(proxyNetworkPolicy(mc)))
	add(ServiceMonitorKind, mc.Name, orNil(serviceMonitor(mc)))
	add(PrometheusRuleKind, mc.Name, orNil(prometheusRule(mc, in.RunbookBaseURL)))
	return d
}

// orNil returns nil for a nil pointer, and the pointer otherwise.
func orNil[T any](p *T) any {
	if p == nil {
		return nil
	}
	return p
}

// withAppliedHash returns object, an apply configuration or an Unstructured,
// as an Unstructured carrying the digest of its content in
// AppliedHashAnnotation.
func withAppliedHash(object any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	if from, ok := object.(*unstructured.Unstructured); ok {
		u = from.DeepCopy()
	} else {
		content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(object)
		if err != nil {
			panic(fmt.Sprintf("failed to convert %T: %v", object, err)) // a programming error
		}
		u.Object = content
	}
	annotations := u.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[AppliedHashAnnotation] = contentHash(u.Object)
	u.SetAnnotations(annotations)
	return u
}

// hashOf returns a digest of the JSON form of v.
func hashOf(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("failed to encode %T: %v", v, err)) // a programming error
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16]
}

// convert turns an API value into the apply configuration of the same type,
// or back: both have the same JSON form. It panics if they do not, a
// programming error.
func convert[T any](in any) *T {
	data, err := json.Marshal(in)
	if err != nil {
		panic(fmt.Sprintf("failed to encode %T: %v", in, err))
	}
	out := new(T)
	if err := json.Unmarshal(data, out); err != nil {
		panic(fmt.Sprintf("failed to decode %T into %T: %v", in, out, err))
	}
	return out
}
