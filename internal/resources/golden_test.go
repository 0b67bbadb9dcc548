package resources

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// update rewrites the golden files with what Build returns:
// go test ./internal/resources -run TestGolden -update
var update = flag.Bool("update", false, "rewrite the golden files of TestGolden under testdata/golden")

// goldenCase is a Memcached as the API server stores it, with the inputs it
// is built with.
type goldenCase struct {
	name string
	spec func(*cachev1alpha1.MemcachedSpec)
	in   func(*Inputs)
}

// goldenCases are the representative Memcacheds whose objects TestGolden
// keeps in testdata/golden.
var goldenCases = []goldenCase{
	{name: "default-sample"},
	{name: "statefulset-warm-restart", spec: func(s *cachev1alpha1.MemcachedSpec) {
		s.Workload = cachev1alpha1.WorkloadStatefulSet
		s.MemoryMB = 1024
		s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true, StorageClassName: ptr.To("fast")}
		s.TerminationGracePeriodSeconds = ptr.To[int64](60)
	}},
	{name: "statefulset-extstore", spec: func(s *cachev1alpha1.MemcachedSpec) {
		s.Workload = cachev1alpha1.WorkloadStatefulSet
		s.MemoryMB = 1024
		s.MaxItemSizeKB = 2048
		s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "100Gi", StorageClassName: ptr.To("local-nvme")}
	}},
	{name: "auth-tls", spec: func(s *cachev1alpha1.MemcachedSpec) {
		s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"}
		s.TLS = &cachev1alpha1.TLSSpec{SecretName: "server-cert", ClientCASecretName: "client-ca"}
	}, in: func(in *Inputs) {
		in.Digests = SecretDigests{Auth: "auth-digest", TLS: "tls-digest"}
	}},
	{name: "monitoring", spec: func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true, Interval: "15s",
			ServiceMonitorLabels: map[string]string{"release": "prometheus"}}
	}},
	{name: "network-policy", spec: func(s *cachev1alpha1.MemcachedSpec) {
		s.NetworkPolicy = &cachev1alpha1.NetworkPolicySpec{
			AllowedFrom: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"app": "web"}}}},
			MetricsAllowedFrom: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}},
		}
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	}},
	{name: "pod-placement", spec: func(s *cachev1alpha1.MemcachedSpec) {
		s.NodeSelector = map[string]string{"disk": "ssd"}
		s.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "cache",
			Effect: corev1.TaintEffectNoSchedule}}
		s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"cache"}}},
			}}}}}
		s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "kubernetes.io/hostname",
			WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"app.kubernetes.io/instance": "example-memcached"}}}}
		s.PriorityClassName = "caches"
		s.PodLabels = map[string]string{"team": "payments"}
		s.PodAnnotations = map[string]string{"example.com/owner": "payments"}
		s.Resources = &cachev1alpha1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		}
		budget := intstr.FromInt32(2)
		s.PodDisruptionBudget = &cachev1alpha1.PodDisruptionBudgetSpec{MinAvailable: &budget}
	}},
	{name: "monitoring-client-certificate", spec: func(s *cachev1alpha1.MemcachedSpec) {
		s.TLS = &cachev1alpha1.TLSSpec{SecretName: "server-cert", ClientCASecretName: "client-ca"}
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true,
			TLS: &cachev1alpha1.MonitoringTLSSpec{ClientCertificateSecretName: "scraper"}}
	}, in: func(in *Inputs) {
		in.Digests = SecretDigests{TLS: "tls-digest", ExporterTLS: "exporter-tls-digest"}
	}},
	{name: "proxy", spec: func(s *cachev1alpha1.MemcachedSpec) {
		s.Workload = cachev1alpha1.WorkloadStatefulSet
		s.Proxy = &cachev1alpha1.ProxySpec{Enabled: true, Replicas: 3}
		s.NetworkPolicy = &cachev1alpha1.NetworkPolicySpec{
			AllowedFrom: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"app": "web"}}}},
		}
	}, in: func(in *Inputs) {
		in.ProxiesReady = true
		in.Servers = Servers{StatefulSetReplicas: 3, List: []string{
			"example-memcached-0.example-memcached-headless.default.svc:11211",
			"example-memcached-1.example-memcached-headless.default.svc:11211",
			"example-memcached-2.example-memcached-headless.default.svc:11211",
		}}
	}},
	{name: "extra-args", spec: func(s *cachev1alpha1.MemcachedSpec) {
		s.MaxConnections = 4096
		s.Threads = 8
		s.Verbosity = 1
		s.ExtraArgs = cachev1alpha1.ExtraArgs{"-o", "hashpower=20", "-R", "40"}
	}},
}

// TestGolden builds the objects of representative Memcacheds and compares
// them, as YAML, with the files of testdata/golden: a change to what the
// operator applies, and so to what running pods get, shows as a diff of these
// files, to be reviewed. A change to a pod template rolls every Memcached it
// applies to when the operator is upgraded (docs/upgrades.md). Run with
// -update to rewrite the files.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			mc := storedMemcached("example-memcached")
			if tc.spec != nil {
				tc.spec(&mc.Spec)
			}
			if err := memcached.CheckExtraArgs(&mc.Spec); err != nil {
				t.Fatalf("the spec is one the operator refuses: %v", err)
			}
			in := Inputs{Servers: Servers{
				List:                serverList(mc),
				StatefulSetReplicas: mc.Spec.Size,
			}}
			if tc.in != nil {
				tc.in(&in)
			}
			got, err := renderDesired(Build(mc, in))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", tc.name+".yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v: run 'go test ./internal/resources -run TestGolden -update' to write it", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the objects of %s differ from %s; if the change is meant, rewrite it with "+
					"'go test ./internal/resources -run TestGolden -update' and review the diff "+
					"(a changed pod template rolls every such Memcached on upgrade):\n%s",
					tc.name, path, lineDiff(string(want), string(got)))
			}
		})
	}
}

// TestGoldenFilesHaveCases fails on a file of testdata/golden that no case
// writes, left from a renamed or removed case.
func TestGoldenFilesHaveCases(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, tc := range goldenCases {
		known[tc.name+".yaml"] = true
	}
	for _, f := range files {
		if !known[filepath.Base(f)] {
			t.Errorf("%s is written by no case of TestGolden: remove it", f)
		}
	}
}

// storedMemcached returns the sample Memcached, size 3, with every default
// the API server fills in.
func storedMemcached(name string) *cachev1alpha1.Memcached {
	return &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "cache", UID: types.UID(name + "-uid")},
		Spec: cachev1alpha1.MemcachedSpec{
			Size:                          3,
			Workload:                      cachev1alpha1.WorkloadDeployment,
			MinReadySeconds:               ptr.To[int32](10),
			ScaleDownDrainSeconds:         ptr.To[int32](30),
			MemoryMB:                      64,
			MaxConnections:                1024,
			Threads:                       4,
			MaxItemSizeKB:                 1024,
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			PreStopDelaySeconds:           ptr.To[int32](5),
		},
	}
}

// serverList returns a server list of mc's size, as the reconcile publishes
// it once every pod runs.
func serverList(mc *cachev1alpha1.Memcached) []string {
	list := make([]string, 0, mc.Spec.Size)
	for i := range mc.Spec.Size {
		list = append(list, fmt.Sprintf("10.244.0.%d:11211", i+2))
	}
	return list
}

// renderDesired returns d as YAML: a comment naming the objects d deletes,
// then every object it applies, in order, one document each.
func renderDesired(d Desired) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Generated by TestGolden (go test ./internal/resources -run TestGolden -update): review its diff.\n")
	for _, r := range d.Absent {
		fmt.Fprintf(&b, "# absent: %s\n", r)
	}
	for _, o := range d.Objects {
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("failed to encode %s: %w", o.Ref(), err)
		}
		b.WriteString("---\n")
		b.Write(data)
	}
	return b.Bytes(), nil
}

// lineDiff returns the lines of want and got that differ, each with its line
// number: enough to see the change; the files show it in full.
func lineDiff(want, got string) string {
	w, g := bytes.Split([]byte(want), []byte("\n")), bytes.Split([]byte(got), []byte("\n"))
	var b bytes.Buffer
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 40; i++ {
		var wl, gl []byte
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if !bytes.Equal(wl, gl) {
			fmt.Fprintf(&b, "line %d:\n  - %s\n  + %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
