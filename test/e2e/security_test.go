package e2e

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/test/internal/localrun"
	"example.com/memcached-operator/test/internal/simcluster"
)

// restricted labels a namespace to enforce the restricted Pod Security Standard.
var restricted = map[string]string{
	"pod-security.kubernetes.io/enforce":         "restricted",
	"pod-security.kubernetes.io/enforce-version": "latest",
}

func TestHardenedMemcachedsRunInRestrictedNamespace(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, restricted)

	cert, key, err := certutil.GenerateSelfSignedCertKey("tls-cache", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8sClient.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls-cache-cert"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}})).To(Succeed())
	g.Expect(k8sClient.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"},
		Data:       map[string][]byte{"app": []byte("s3cret")}})).To(Succeed())

	// TLS with the exporter, and auth with a NetworkPolicy: every pod,
	// container and volume the operator adds passes the restricted profile.
	tlsCache := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tls-cache"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 3,
			TLS:        &cachev1alpha1.TLSSpec{SecretName: "tls-cache-cert"},
			Monitoring: &cachev1alpha1.MonitoringSpec{Enabled: true}},
	}
	authCache := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "auth-cache"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 2,
			Auth:          &cachev1alpha1.AuthSpec{SecretName: "users"},
			NetworkPolicy: &cachev1alpha1.NetworkPolicySpec{}},
	}
	for _, mc := range []*cachev1alpha1.Memcached{tlsCache, authCache} {
		g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	}
	expectConverged(t, tlsCache, 3)
	expectConverged(t, authCache, 2)

	// A new password and a renewed certificate roll the pods of both: the
	// memcached Deployments get a new ReplicaSet each, and converge again;
	// the exporter's stays as it is.
	g.Expect(replicaSetUIDs(g, ns)).To(HaveLen(3))
	users := &corev1.Secret{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "users"}, users)).To(Succeed())
	users.Data["app"] = []byte("n3w-s3cret")
	g.Expect(k8sClient.Update(t.Context(), users)).To(Succeed())
	cert, key, err = certutil.GenerateSelfSignedCertKey("tls-cache", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	serving := &corev1.Secret{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "tls-cache-cert"}, serving)).To(Succeed())
	serving.Data = map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}
	g.Expect(k8sClient.Update(t.Context(), serving)).To(Succeed())
	g.Eventually(func(g Gomega) []string { return replicaSetUIDs(g, ns) }).Should(HaveLen(5))
	expectConverged(t, tlsCache, 3)
	expectConverged(t, authCache, 2)

	// No password is in the operator's log.
	log, err := os.ReadFile(operatorLogs[len(operatorLogs)-1])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(log)).To(ContainSubstring("auth-cache"))
	g.Expect(string(log)).NotTo(ContainSubstring("s3cret"))

	pdb := &policyv1.PodDisruptionBudget{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(tlsCache), pdb)).To(Succeed())
	g.Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))
	// The disruption controller of kube-controller-manager sees the pods.
	g.Eventually(func(g Gomega) int32 {
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(tlsCache), pdb)).To(Succeed())
		return pdb.Status.DisruptionsAllowed
	}).Should(Equal(int32(1)))
}

func TestManagerDeploymentPassesRestricted(t *testing.T) {
	g := NewWithT(t)
	objects, err := localrun.Render(t.Context(), kubectl, filepath.Join(repoRoot, "config", "default"))
	g.Expect(err).NotTo(HaveOccurred())
	var template *corev1.PodTemplateSpec
	for _, obj := range objects {
		if obj.GetKind() == "Deployment" {
			spec, found, err := unstructured.NestedMap(obj.Object, "spec", "template")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(found).To(BeTrue())
			template = &corev1.PodTemplateSpec{}
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(spec, template)).To(Succeed())
		}
	}
	g.Expect(template).NotTo(BeNil(), "config/default has no Deployment")
	g.Expect(template.Spec.Containers[0].Args).To(ContainElement("--leader-elect"))

	// The pod the Deployment would create is admitted where restricted is enforced.
	ns := newNamespace(t, restricted)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "manager", Labels: template.Labels},
		Spec: template.Spec}
	pod.Spec.ServiceAccountName = "" // the ServiceAccount lives in the operator's namespace
	g.Expect(k8sClient.Create(t.Context(), pod, client.DryRunAll)).To(Succeed())
}

// TestANamespacedOperatorManagesOnlyItsNamespace installs config/namespaced
// on a cluster of its own and runs the operator as config/namespaced deploys
// it: with a Role in its namespace, WATCH_NAMESPACE, leader election and
// secure metrics.
func TestANamespacedOperatorManagesOnlyItsNamespace(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	dir := filepath.Join(logDir, "namespaced")
	scoped, err := simcluster.Start(ctx, simcluster.Options{BinDir: filepath.Dir(kubectl), DataDir: filepath.Join(dir, "cluster")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = scoped.Close() })
	c, err := client.New(scoped.Config, client.Options{Scheme: k8sClient.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())

	manifests := filepath.Join(repoRoot, "config", "namespaced")
	objects, err := localrun.Render(ctx, kubectl, manifests)
	g.Expect(err).NotTo(HaveOccurred())
	defaults, err := localrun.Render(ctx, kubectl, filepath.Join(repoRoot, "config", "default"))
	g.Expect(err).NotTo(HaveOccurred())
	const operatorNS = "memcached-operator-system"
	for _, obj := range objects {
		if obj.GetKind() == "ClusterRole" || obj.GetKind() == "ClusterRoleBinding" {
			g.Expect(obj.GetName()).NotTo(ContainSubstring("manager-role"), "the manager's permissions are cluster-wide")
		}
	}
	// The manager's environment is config/default's, and WATCH_NAMESPACE.
	envNames := func(objects []*unstructured.Unstructured) []string {
		var names []string
		for _, obj := range objects {
			if obj.GetKind() != "Deployment" {
				continue
			}
			containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
			env, _, _ := unstructured.NestedSlice(containers[0].(map[string]any), "env")
			for _, e := range env {
				names = append(names, e.(map[string]any)["name"].(string))
			}
		}
		return names
	}
	g.Expect(envNames(defaults)).NotTo(BeEmpty())
	g.Expect(envNames(objects)).To(ConsistOf(append(envNames(defaults), "WATCH_NAMESPACE")))
	kubeconfig := filepath.Join(dir, "operator.kubeconfig")
	g.Expect(localrun.Install(ctx, scoped.Config, kubectl, manifests, kubeconfig)).To(Succeed())

	logPath := filepath.Join(dir, "operator.log")
	op, err := localrun.Start(ctx, localrun.Config{
		Binary: managerBinary, Kubeconfig: kubeconfig, LogPath: logPath, SecureMetrics: true,
		Args: []string{"--leader-elect", "--leader-election-namespace=" + operatorNS},
		Env:  []string{"WATCH_NAMESPACE=" + operatorNS},
	})
	g.Expect(err).NotTo(HaveOccurred())
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = op.Stop()
		}
	})

	// It holds the leader Lease...
	lease := &coordinationv1.Lease{}
	leaseKey := client.ObjectKey{Namespace: operatorNS, Name: "memcached-operator.cache.example.com"}
	g.Eventually(func(g Gomega) string {
		g.Expect(c.Get(ctx, leaseKey, lease)).To(Succeed())
		return ptr.Deref(lease.Spec.HolderIdentity, "")
	}).ShouldNot(BeEmpty())

	// ...manages the Memcacheds of its namespace with its Role alone...
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: "cache"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 2}}
	g.Expect(c.Create(ctx, mc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		current := &cachev1alpha1.Memcached{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(mc), current)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(current.Status.Conditions, cachev1alpha1.ConditionAvailable)).To(BeTrue())
		g.Expect(current.Status.Nodes).To(HaveLen(2))
	}).Should(Succeed())

	// ...and leaves the others alone: a Memcached of its namespace created
	// after one elsewhere gets a status, the one elsewhere none. A watch of
	// every namespace would have brought the operator the one elsewhere
	// first.
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}})).To(Succeed())
	other := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: "elsewhere", Name: "cache"}}
	g.Expect(c.Create(ctx, other)).To(Succeed())
	witness := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: "after-elsewhere"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1}}
	g.Expect(c.Create(ctx, witness)).To(Succeed())
	g.Eventually(func(g Gomega) []metav1.Condition {
		current := &cachev1alpha1.Memcached{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(witness), current)).To(Succeed())
		return current.Status.Conditions
	}).ShouldNot(BeEmpty())
	current := &cachev1alpha1.Memcached{}
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(other), current)).To(Succeed())
	g.Expect(current.Status.Conditions).To(BeEmpty(), "the operator reconciled a Memcached outside its namespace")

	// Its metrics need a token allowed to read them.
	clientset, err := kubernetes.NewForConfig(scoped.Config)
	g.Expect(err).NotTo(HaveOccurred())
	expectScrape(t, op.MetricsURL, "", http.StatusUnauthorized)
	expectScrape(t, op.MetricsURL, serviceAccountToken(t, clientset, c, operatorNS, "stranger", ""), http.StatusForbidden)
	expectScrape(t, op.MetricsURL, serviceAccountToken(t, clientset, c, operatorNS, "prometheus", "memcached-operator-metrics-reader"),
		http.StatusOK)

	// SIGTERM stops it cleanly, and it hands the Lease back at once.
	stopped = true
	g.Expect(op.Stop()).To(Succeed())
	g.Expect(c.Get(ctx, leaseKey, lease)).To(Succeed())
	g.Expect(ptr.Deref(lease.Spec.HolderIdentity, "")).To(BeEmpty(), "the Lease was not released")

	log, err := os.ReadFile(logPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.ToLower(string(log))).NotTo(ContainSubstring("forbidden"))
}

// serviceAccountToken creates a ServiceAccount, bound to clusterRole unless
// it is empty, and returns a token of it.
func serviceAccountToken(t *testing.T, clientset kubernetes.Interface, c client.Client, namespace, name, clusterRole string) string {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	g.Expect(c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})).To(Succeed())
	if clusterRole != "" {
		g.Expect(c.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-" + clusterRole},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}},
		})).To(Succeed())
	}
	token, err := clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}},
		metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return token.Status.Token
}

// expectScrape scrapes the operator's secure metrics endpoint, with token
// unless it is empty, until it answers with the HTTP status want: a new
// RoleBinding may take a moment to be seen. The operator's certificate is
// self-signed; the endpoint is on the loopback interface.
func expectScrape(t *testing.T, url, token string, want int) {
	t.Helper()
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a self-signed certificate on loopback
	NewWithT(t).Eventually(func(g Gomega) int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		g.Expect(err).NotTo(HaveOccurred())
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		return resp.StatusCode
	}, 30*time.Second).Should(Equal(want))
}

// TestPodsPassRestrictedWithAnyUID checks, at the API server's admission,
// the memcached pods of both --memcached-uid modes, and the operator's own
// pod, where the restricted Pod Security Standard is enforced: as rendered,
// and with the uid and fsGroup a platform such as OpenShift's restricted-v2
// assigns from the namespace's range.
func TestPodsPassRestrictedWithAnyUID(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, restricted)
	assigned := func(spec corev1.PodSpec) corev1.PodSpec {
		spec = *spec.DeepCopy()
		if spec.SecurityContext == nil {
			spec.SecurityContext = &corev1.PodSecurityContext{}
		}
		spec.SecurityContext.RunAsUser = ptr.To[int64](1000680000)
		spec.SecurityContext.FSGroup = ptr.To[int64](1000680000)
		return spec
	}
	admit := func(name string, spec corev1.PodSpec) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
		g.Expect(k8sClient.Create(t.Context(), pod, client.DryRunAll)).To(Succeed(), "pod %s was refused", name)
	}

	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache", UID: "uid"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1, Workload: cachev1alpha1.WorkloadStatefulSet,
			Auth:        &cachev1alpha1.AuthSpec{SecretName: "users"},
			WarmRestart: &cachev1alpha1.WarmRestartSpec{Enabled: true}}}
	for _, platform := range []bool{false, true} {
		desired := resources.Build(mc, resources.Inputs{Servers: resources.Servers{StatefulSetReplicas: 1}, PlatformAssignsUID: platform})
		for _, o := range desired.Objects {
			if o.Kind != resources.StatefulSetKind {
				continue
			}
			set := &appsv1.StatefulSet{}
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, set)).To(Succeed())
			spec := set.Spec.Template.Spec
			// The memory file volume comes from a claim the StatefulSet makes.
			for i := range spec.Volumes {
				spec.Volumes[i].VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
			}
			spec.Volumes = append(spec.Volumes, corev1.Volume{Name: resources.MemoryFileClaim,
				VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			g.Expect(spec.SecurityContext.RunAsUser == nil).To(Equal(platform))
			name := map[bool]string{false: "fixed", true: "platform"}[platform]
			admit("memcached-"+name, spec)
			admit("memcached-"+name+"-assigned", assigned(spec))
		}
	}

	objects, err := localrun.Render(t.Context(), kubectl, filepath.Join(repoRoot, "config", "default"))
	g.Expect(err).NotTo(HaveOccurred())
	for _, obj := range objects {
		if obj.GetKind() != "Deployment" {
			continue
		}
		d := &appsv1.Deployment{}
		g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, d)).To(Succeed())
		spec := d.Spec.Template.Spec
		spec.ServiceAccountName = "" // the ServiceAccount lives in the operator's namespace
		g.Expect(spec.SecurityContext.RunAsUser).To(BeNil(), "the operator pins its uid: a platform could not assign one")
		admit("manager-assigned", assigned(spec))
	}
}

// TestMetricsServeTheCertificateOfConfigMetricsTLS runs the operator with the
// argument config/metrics-tls's cert_metrics_manager_patch.yaml adds, pointed at
// a certificate of the test's: the metrics endpoint serves that
// certificate, so a Prometheus can verify it with its CA.
func TestMetricsServeTheCertificateOfConfigMetricsTLS(t *testing.T) {
	g := NewWithT(t)
	patch, err := os.ReadFile(filepath.Join(repoRoot, "config", "metrics-tls", "cert_metrics_manager_patch.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var ops []struct {
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	g.Expect(yaml.Unmarshal(patch, &ops)).To(Succeed())
	var flagName string
	for _, op := range ops {
		if arg, ok := op.Value.(string); ok && strings.HasSuffix(op.Path, "/args/-") {
			flagName, _, _ = strings.Cut(arg, "=")
		}
	}
	g.Expect(flagName).To(Equal("--metrics-cert-path"))

	dir := t.TempDir()
	cert, key, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(dir, "tls.crt"), cert, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "tls.key"), key, 0o600)).To(Succeed())

	// An operator of its own, watching an empty namespace only.
	op, err := localrun.Start(t.Context(), localrun.Config{
		Binary: managerBinary, Kubeconfig: operatorKubeconfig, SecureMetrics: true,
		LogPath: filepath.Join(logDir, "operator-metrics-cert.log"),
		Args:    []string{flagName + "=" + dir},
		Env:     []string{"WATCH_NAMESPACE=" + newNamespace(t, nil)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = op.Stop() })

	pool, err := certutil.NewPoolFromBytes(cert)
	g.Expect(err).NotTo(HaveOccurred())
	address := strings.TrimSuffix(strings.TrimPrefix(op.MetricsURL, "https://"), "/metrics")
	conn, err := tls.Dial("tcp", address, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	g.Expect(err).NotTo(HaveOccurred(), "the metrics endpoint does not serve the given certificate")
	defer func() { _ = conn.Close() }()
	served := conn.ConnectionState().PeerCertificates
	g.Expect(served).NotTo(BeEmpty())
	given, err := certutil.ParseCertsPEM(cert)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(served[0].Equal(given[0])).To(BeTrue())
}
