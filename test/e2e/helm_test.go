package e2e

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/localrun"
	"example.com/memcached-operator/test/internal/simcluster"
)

const (
	// helmRelease is named after the chart, so that the objects get the names
	// config/default gives them.
	helmRelease   = "memcached-operator"
	helmNamespace = "memcached-operator-system"
	crdName       = "memcacheds.cache.example.com"
)

// helmRun runs the Helm binary of HELM_BINARY against one cluster, with
// Helm's own configuration and cache in a directory of the test.
type helmRun struct {
	t          *testing.T
	binary     string
	kubeconfig string
	home       string
}

// run runs helm and returns what it printed on stdout; a failure carries
// stderr too.
func (h *helmRun) run(args ...string) (string, error) {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(h.t.Context(), h.binary, append(args, "--kubeconfig", h.kubeconfig)...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"),
	)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// must runs helm and fails the test if it fails.
func (h *helmRun) must(args ...string) string {
	h.t.Helper()
	out, err := h.run(args...)
	NewWithT(h.t).Expect(err).NotTo(HaveOccurred())
	return out
}

// TestHelmChartRendersConfigDefaultAndInstalls lints and renders
// charts/memcached-operator, checks what it renders against config/, then
// installs, upgrades and uninstalls it on a cluster of its own. The operator
// does not run: its pods are kwok's.
func TestHelmChartRendersConfigDefaultAndInstalls(t *testing.T) {
	binary := os.Getenv("HELM_BINARY")
	if binary == "" {
		t.Fatal("HELM_BINARY must name a Helm 3 binary: run this test with 'make test-e2e', which builds one with 'make helm'")
	}
	g := NewWithT(t)
	ctx := t.Context()
	chart, err := filepath.Abs(filepath.Join(repoRoot, "charts", "memcached-operator"))
	g.Expect(err).NotTo(HaveOccurred())

	dir := filepath.Join(logDir, "helm")
	own, err := simcluster.Start(ctx, simcluster.Options{BinDir: filepath.Dir(kubectl), DataDir: filepath.Join(dir, "cluster")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = own.Close() })
	kubeVersion := controlPlaneVersion(t)
	// Helm checks the chart's kubeVersion against the cluster's.
	clientset, err := kubernetes.NewForConfig(own.Config)
	g.Expect(err).NotTo(HaveOccurred())
	info, err := clientset.Discovery().ServerVersion()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.GitVersion).To(Equal(kubeVersion), "the control plane does not report its version")
	helm := &helmRun{t: t, binary: binary, kubeconfig: own.Kubeconfig, home: t.TempDir()}

	out := helm.must("lint", "--strict", chart)
	g.Expect(out).To(ContainSubstring("0 chart(s) failed"))

	checkDefaultRendering(t, helm, chart, kubeVersion)
	namespacedValues := filepath.Join(t.TempDir(), "namespaced.yaml")
	g.Expect(os.WriteFile(namespacedValues, []byte(`watchNamespaces: [a, b]
metrics:
  serviceMonitor:
    enabled: true
networkPolicy:
  enabled: true
`), 0o600)).To(Succeed())
	checkNamespacedRendering(t, helm, chart, kubeVersion, namespacedValues)

	checkInstallUpgradeUninstall(t, helm, own, chart)
	checkUpgradeFromTheOldSelector(t, helm, own, chart)
}

// TestTheChartIsRenderedFromConfig changes config/ in a copy of the
// repository, as a change to the manager, its arguments or its RBAC would,
// and checks that `make manifests`'s hack/sync-chart.sh carries each change
// into what the chart renders: config/ is the only hand-written install.
func TestTheChartIsRenderedFromConfig(t *testing.T) {
	helmBinary, kustomize := os.Getenv("HELM_BINARY"), os.Getenv("KUSTOMIZE_BINARY")
	if helmBinary == "" || kustomize == "" {
		t.Fatal("HELM_BINARY and KUSTOMIZE_BINARY must be set: run this test with 'make test-e2e'")
	}
	g := NewWithT(t)
	copyRoot := t.TempDir()
	for _, dir := range []string{"config", "charts", "hack"} {
		g.Expect(os.CopyFS(filepath.Join(copyRoot, dir), os.DirFS(filepath.Join(repoRoot, dir)))).To(Succeed())
	}
	edit := func(file, old, replacement string) {
		path := filepath.Join(copyRoot, file)
		data, err := os.ReadFile(path)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(strings.Count(string(data), old)).To(Equal(1), "%s holds %q once", file, old)
		g.Expect(os.WriteFile(path, []byte(strings.Replace(string(data), old, replacement, 1)), 0o600)).To(Succeed())
	}
	// A probe and an argument of the manager, a default image, and a rule.
	edit("config/manager/manager.yaml", "periodSeconds: 20", "periodSeconds: 21")
	edit("config/manager/manager.yaml", "- --health-probe-bind-address=:8081", "- --health-probe-bind-address=:8081\n          - --zap-log-level=debug")
	edit("config/manager/manager.yaml", "memcached:1.6.39-alpine", "memcached:1.6.40-alpine")
	edit("config/rbac/metrics_reader_role.yaml", `- "/metrics"`, `- "/metrics"`+"\n  - \"/metrics/extra\"")

	sync := exec.CommandContext(t.Context(), "bash", filepath.Join(copyRoot, "hack", "sync-chart.sh"))
	sync.Env = append(os.Environ(), "KUSTOMIZE="+kustomize)
	out, err := sync.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))

	helm := &helmRun{t: t, binary: helmBinary, kubeconfig: filepath.Join(copyRoot, "no-cluster"), home: t.TempDir()}
	chart := filepath.Join(copyRoot, "charts", "memcached-operator")
	rendered := indexObjects(decodeObjects(g, helm.must("template", helmRelease, chart, "--namespace", helmNamespace)))
	manager := deploymentOf(g, rendered["Deployment/"+helmNamespace+"/memcached-operator-controller-manager"]).Spec.Template.Spec.Containers[0]
	g.Expect(manager.LivenessProbe.PeriodSeconds).To(BeEquivalentTo(21))
	g.Expect(manager.Args).To(ContainElements("--zap-log-level=debug", "--memcached-image=docker.io/library/memcached:1.6.40-alpine"))
	reader := rendered["ClusterRole//memcached-operator-metrics-reader"]
	g.Expect(policyRules(g, reader)).To(ConsistOf(HaveField("NonResourceURLs", ConsistOf("/metrics", "/metrics/extra"))))

	// The values still win over config/.
	mirrored := indexObjects(decodeObjects(g, helm.must("template", helmRelease, chart, "--namespace", helmNamespace,
		"--set", "defaultImages.memcached=mirror.example.com/memcached:1")))
	manager = deploymentOf(g, mirrored["Deployment/"+helmNamespace+"/memcached-operator-controller-manager"]).Spec.Template.Spec.Containers[0]
	g.Expect(manager.Args).To(ContainElement("--memcached-image=mirror.example.com/memcached:1"))
	g.Expect(manager.Args).NotTo(ContainElement(HavePrefix("--memcached-image=docker.io")))
}

// TestHelmChartHasWhatPlatformTeamsExpect renders the chart with the values
// platform teams set: a values schema that refuses what the templates cannot
// use, a PodDisruptionBudget and topology spread for the manager, helper roles
// aggregated into admin, edit and view, a `helm test` hook, and the Kubernetes
// versions the operator needs.
func TestHelmChartHasWhatPlatformTeamsExpect(t *testing.T) {
	binary := os.Getenv("HELM_BINARY")
	if binary == "" {
		t.Fatal("HELM_BINARY must name a Helm 3 binary: run this test with 'make test-e2e', which builds one with 'make helm'")
	}
	chart, err := filepath.Abs(filepath.Join(repoRoot, "charts", "memcached-operator"))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	kubeVersion := controlPlaneVersion(t)
	helm := &helmRun{t: t, binary: binary, kubeconfig: filepath.Join(t.TempDir(), "none"), home: t.TempDir()}
	render := func(g Gomega, args ...string) map[string]*unstructured.Unstructured {
		return indexObjects(decodeObjects(g, helm.must(append([]string{"template", helmRelease, chart,
			"--namespace", helmNamespace, "--kube-version", kubeVersion}, args...)...)))
	}
	renderError := func(args ...string) error {
		_, err := helm.run(append([]string{"template", helmRelease, chart, "--namespace", helmNamespace,
			"--kube-version", kubeVersion}, args...)...)
		return err
	}
	valuesFile := func(g Gomega, values string) string {
		path := filepath.Join(t.TempDir(), "values.yaml")
		g.Expect(os.WriteFile(path, []byte(values), 0o600)).To(Succeed())
		return path
	}
	managerID := "Deployment/" + helmNamespace + "/memcached-operator-controller-manager"
	pdbID := "PodDisruptionBudget/" + helmNamespace + "/memcached-operator-controller-manager"

	t.Run("values schema", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(filepath.Join(chart, "values.schema.json")).To(BeAnExistingFile())
		for values, want := range map[string]string{
			`replicas: "3"`:                      "/replicas",
			"replicaCount: 3":                    "replicaCount",
			"image:\n  tag: 1.5\n":               "/image/tag",
			"leaderElection:\n  enabled: yes!\n": "/leaderElection/enabled",
			"metrics:\n  port: 70000\n":          "/metrics/port",
			"watchNamespaces: a":                 "/watchNamespaces",
			"extraArgs: --zap-log-level=debug":   "/extraArgs",
		} {
			g.Expect(renderError("-f", valuesFile(g, values))).To(MatchError(ContainSubstring(want)), "values %q", values)
		}
		// Every value of values.yaml, and the values the other tests set,
		// pass.
		render(g, "-f", filepath.Join(chart, "values.yaml"), "--set", "resources=null", "--set", "image.digest=sha256:0123",
			"--set", "watchNamespaces={a,b}", "--set-json", `podDisruptionBudget={"enabled":true,"maxUnavailable":"50%"}`)
	})

	t.Run("PodDisruptionBudget with more than one replica", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(render(g)).NotTo(HaveKey(pdbID), "a PodDisruptionBudget of 1 replica blocks every drain")
		rendered := render(g, "--set", "replicas=2")
		pdb := rendered[pdbID]
		g.Expect(pdb).NotTo(BeNil(), "no PodDisruptionBudget with 2 replicas")
		g.Expect(pdb.Object["spec"]).To(HaveKeyWithValue("minAvailable", BeNumerically("==", 1)))
		selector, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
		g.Expect(selector).To(Equal(deploymentOf(g, rendered[managerID]).Spec.Selector.MatchLabels))
		spec := render(g, "--set", "replicas=3", "--set", "podDisruptionBudget.maxUnavailable=1")[pdbID].Object["spec"]
		g.Expect(spec).To(And(HaveKeyWithValue("maxUnavailable", BeNumerically("==", 1)), Not(HaveKey("minAvailable"))))
		g.Expect(render(g, "--set", "replicas=2", "--set", "podDisruptionBudget.enabled=false")).NotTo(HaveKey(pdbID))
	})

	t.Run("topology spread", func(t *testing.T) {
		g := NewWithT(t)
		rendered := render(g, "-f", valuesFile(g, `topologySpreadConstraints:
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: DoNotSchedule
  labelSelector:
    matchLabels: {mine: "yes"}
`))
		deployment := deploymentOf(g, rendered[managerID])
		constraints := deployment.Spec.Template.Spec.TopologySpreadConstraints
		g.Expect(constraints).To(HaveLen(2))
		g.Expect(constraints[0].TopologyKey).To(Equal("topology.kubernetes.io/zone"))
		g.Expect(constraints[0].LabelSelector).To(Equal(deployment.Spec.Selector), "a constraint without a selector spreads the manager's pods")
		g.Expect(constraints[1].LabelSelector.MatchLabels).To(Equal(map[string]string{"mine": "yes"}))
		g.Expect(deploymentOf(g, render(g)[managerID]).Spec.Template.Spec.TopologySpreadConstraints).To(BeEmpty())
	})

	t.Run("helper roles aggregated into admin, edit and view", func(t *testing.T) {
		g := NewWithT(t)
		kustomized, err := localrun.Render(t.Context(), kubectl, filepath.Join(repoRoot, "config", "default"))
		g.Expect(err).NotTo(HaveOccurred())
		rendered := render(g)
		for role, aggregate := range map[string]string{"admin": "admin", "editor": "edit", "viewer": "view"} {
			id := "ClusterRole//memcached-operator-memcached-" + role + "-role"
			label := HaveKeyWithValue("rbac.authorization.k8s.io/aggregate-to-"+aggregate, "true")
			g.Expect(indexObjects(kustomized)[id]).NotTo(BeNil(), "config/default has no %s", id)
			g.Expect(indexObjects(kustomized)[id].GetLabels()).To(label, "config/rbac's %s role", role)
			g.Expect(rendered[id]).NotTo(BeNil(), "the chart has no %s", id)
			g.Expect(rendered[id].GetLabels()).To(label, "the chart's %s role", role)
			g.Expect(render(g, "--set", "rbac.helpers.aggregateToDefaultRoles=false")[id].GetLabels()).
				NotTo(HaveKey(HavePrefix("rbac.authorization.k8s.io/aggregate-to-")))
		}
	})

	t.Run("helm test hook", func(t *testing.T) {
		g := NewWithT(t)
		var hook *corev1.Pod
		for _, obj := range render(g) {
			if obj.GetKind() == "Pod" && obj.GetAnnotations()["helm.sh/hook"] == "test" {
				hook = &corev1.Pod{}
				g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, hook)).To(Succeed())
			}
		}
		g.Expect(hook).NotTo(BeNil(), "no pod for helm test")
		g.Expect(hook.Namespace).To(Equal(helmNamespace))
		g.Expect(hook.Spec.RestartPolicy).To(Equal(corev1.RestartPolicyNever))
		g.Expect(hook.Spec.Containers).To(HaveLen(1))
		g.Expect(hook.Spec.Containers[0].Command).To(ContainElements(
			"memcached-operator-controller-manager-metrics-service."+helmNamespace+".svc", "8443"),
			"the hook checks the metrics Service")
		g.Expect(render(g, "--set", "tests.enabled=false")).NotTo(ContainElement(
			WithTransform(func(o *unstructured.Unstructured) string { return o.GetAnnotations()["helm.sh/hook"] }, Equal("test"))))
	})

	t.Run("Kubernetes versions", func(t *testing.T) {
		g := NewWithT(t)
		// The CRD's rules need 1.33 (TestRulesNeedKubernetes133).
		_, err := helm.run("template", helmRelease, chart, "--kube-version", "v1.32.9")
		g.Expect(err).To(MatchError(ContainSubstring("incompatible with Kubernetes v1.32.9")))
		render(g, "--kube-version", "v1.33.0")
	})
}

// checkDefaultRendering renders the chart with its default values: the same
// objects as config/default but its Namespace, with the same manager, RBAC
// rules and CRD.
func checkDefaultRendering(t *testing.T, helm *helmRun, chart, kubeVersion string) {
	g := NewWithT(t)
	rendered := withoutHooks(decodeObjects(g, helm.must("template", helmRelease, chart, "--namespace", helmNamespace, "--kube-version", kubeVersion)))
	kustomized, err := localrun.Render(t.Context(), kubectl, filepath.Join(repoRoot, "config", "default"))
	g.Expect(err).NotTo(HaveOccurred())
	var want []string
	for _, obj := range kustomized {
		if obj.GetKind() != "Namespace" {
			want = append(want, objectID(obj))
		}
	}
	g.Expect(objectIDs(rendered)).To(ConsistOf(want), "the chart installs what config/default does, bar the Namespace")

	byID := indexObjects(rendered)
	managerRules := configManagerRules(g)
	role := byID["ClusterRole//memcached-operator-manager-role"]
	g.Expect(policyRules(g, role)).To(Equal(managerRules), "the manager's rules are those of config/rbac/role.yaml")
	binding := byID["ClusterRoleBinding//memcached-operator-manager-rolebinding"]
	g.Expect(binding.Object["subjects"]).To(ConsistOf(HaveKeyWithValue("namespace", helmNamespace)))

	// The manager as config/default runs it.
	got := deploymentOf(g, byID["Deployment/"+helmNamespace+"/memcached-operator-controller-manager"])
	wantDeployment := deploymentOf(g, indexObjects(kustomized)["Deployment/"+helmNamespace+"/memcached-operator-controller-manager"])
	gotPod, wantPod := got.Spec.Template.Spec, wantDeployment.Spec.Template.Spec
	g.Expect(gotPod.SecurityContext).To(Equal(wantPod.SecurityContext))
	g.Expect(gotPod.ServiceAccountName).To(Equal(wantPod.ServiceAccountName))
	g.Expect(gotPod.TerminationGracePeriodSeconds).To(Equal(wantPod.TerminationGracePeriodSeconds))
	g.Expect(gotPod.Containers).To(HaveLen(1))
	manager, wantManager := gotPod.Containers[0], wantPod.Containers[0]
	g.Expect(manager.Args).To(Equal(wantManager.Args))
	g.Expect(manager.Args).NotTo(ContainElement(HavePrefix("--memcached-uid")), "memcachedPodUID fixed is the manager's default")
	g.Expect(manager.Env).NotTo(ContainElement(HaveField("Name", "WATCH_NAMESPACE")), "no WATCH_NAMESPACE: every namespace")
	g.Expect(manager.Env).To(Equal(wantManager.Env), "the Go memory limit follows the container's, as in config/default")
	g.Expect(manager.SecurityContext).To(Equal(wantManager.SecurityContext))
	g.Expect(manager.Resources).To(Equal(wantManager.Resources))
	g.Expect(manager.Command).To(Equal(wantManager.Command))
	g.Expect(manager.Ports).To(Equal(wantManager.Ports))
	g.Expect(manager.LivenessProbe).To(Equal(wantManager.LivenessProbe))
	g.Expect(manager.ReadinessProbe).To(Equal(wantManager.ReadinessProbe))
	g.Expect(manager.Image).To(Equal("controller:0.1.0"), "the tag defaults to the appVersion")
	// The selector of config/manager: a Deployment's selector cannot change,
	// so a kubectl install can become a release in place only with it.
	g.Expect(got.Spec.Selector).To(Equal(wantDeployment.Spec.Selector))
	g.Expect(got.Spec.Template.Labels).To(HaveKeyWithValue("app.kubernetes.io/instance", helmRelease))
	g.Expect(got.Labels).To(And(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"),
		HaveKeyWithValue("app.kubernetes.io/version", "0.1.0")))

	// The CRD of config/crd, kept on uninstall.
	crd := byID["CustomResourceDefinition//"+crdName]
	g.Expect(crd.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
	g.Expect(crd.Object["spec"]).To(Equal(indexObjects(kustomized)["CustomResourceDefinition//"+crdName].Object["spec"]))

	// A digest wins over the tag; platform uids and no leader election are
	// passed on; no CRD when crds.install is false.
	other := indexObjects(decodeObjects(g, helm.must("template", helmRelease, chart, "--namespace", helmNamespace,
		"--kube-version", kubeVersion, "--set", "image.repository=registry.example.com/op", "--set", "image.tag=v1",
		"--set", "image.digest=sha256:0123", "--set", "memcachedPodUID=platform", "--set", "leaderElection.enabled=false",
		"--set", "defaultImages.memcached=mirror.example.com/memcached:1.6.39-alpine",
		"--set", "defaultImages.exporter=mirror.example.com/memcached-exporter:v0.15.4",
		"--set", "crds.install=false", "--set", "metrics.enabled=false")))
	manager = deploymentOf(g, other["Deployment/"+helmNamespace+"/memcached-operator-controller-manager"]).Spec.Template.Spec.Containers[0]
	g.Expect(manager.Image).To(Equal("registry.example.com/op@sha256:0123"))
	g.Expect(manager.Args).To(ConsistOf("--leader-elect=false", "--health-probe-bind-address=:8081", "--memcached-uid=platform",
		"--memcached-image=mirror.example.com/memcached:1.6.39-alpine", "--exporter-image=mirror.example.com/memcached-exporter:v0.15.4"))
	g.Expect(other).NotTo(HaveKey("CustomResourceDefinition//" + crdName))
	g.Expect(other).NotTo(HaveKey("Service/" + helmNamespace + "/memcached-operator-controller-manager-metrics-service"))
	auto := indexObjects(decodeObjects(g, helm.must("template", helmRelease, chart, "--namespace", helmNamespace,
		"--kube-version", kubeVersion, "--set", "memcachedPodUID=auto")))
	g.Expect(deploymentOf(g, auto["Deployment/"+helmNamespace+"/memcached-operator-controller-manager"]).Spec.Template.Spec.Containers[0].Args).
		To(ContainElement("--memcached-uid=auto"))
	_, err = helm.run("template", helmRelease, chart, "--kube-version", kubeVersion, "--set", "memcachedPodUID=root")
	g.Expect(err).To(MatchError(ContainSubstring(`memcachedPodUID must be "fixed", "platform" or "auto"`)))
	_, err = helm.run("template", helmRelease, chart, "--kube-version", kubeVersion,
		"--set", "replicas=3", "--set", "leaderElection.enabled=false")
	g.Expect(err).To(MatchError(ContainSubstring("every replica would act at once")))

	// Resources given replace the defaults as a whole: no CPU limit stays
	// behind.
	values := filepath.Join(t.TempDir(), "resources.yaml")
	g.Expect(os.WriteFile(values, []byte("resources:\n  limits:\n    memory: 256Mi\n"), 0o600)).To(Succeed())
	sized := indexObjects(decodeObjects(g, helm.must("template", helmRelease, chart, "--namespace", helmNamespace,
		"--kube-version", kubeVersion, "-f", values)))
	manager = deploymentOf(g, sized["Deployment/"+helmNamespace+"/memcached-operator-controller-manager"]).Spec.Template.Spec.Containers[0]
	g.Expect(manager.Resources.Limits).To(Equal(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}))
	g.Expect(manager.Resources.Requests).To(BeEmpty())

	// A metrics certificate of the user's: mounted where --metrics-cert-path
	// points, and verified by the ServiceMonitor with its CA.
	certified := indexObjects(decodeObjects(g, helm.must("template", helmRelease, chart, "--namespace", helmNamespace,
		"--kube-version", kubeVersion, "--set", "metrics.certSecretName=metrics-cert", "--set", "metrics.serviceMonitor.enabled=true")))
	pod := deploymentOf(g, certified["Deployment/"+helmNamespace+"/memcached-operator-controller-manager"]).Spec.Template.Spec
	manager = pod.Containers[0]
	g.Expect(manager.Args).To(ContainElement(HavePrefix("--metrics-cert-path=")))
	certPath := strings.TrimPrefix(manager.Args[slices.IndexFunc(manager.Args, func(a string) bool {
		return strings.HasPrefix(a, "--metrics-cert-path=")
	})], "--metrics-cert-path=")
	g.Expect(manager.VolumeMounts).To(ContainElement(And(HaveField("MountPath", certPath), HaveField("Name", "metrics-certs"))))
	g.Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", "metrics-certs"),
		HaveField("Secret.SecretName", "metrics-cert"))))
	monitor := certified["ServiceMonitor/"+helmNamespace+"/memcached-operator-controller-manager-metrics-monitor"]
	g.Expect(monitor).NotTo(BeNil())
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	g.Expect(endpoints).To(HaveLen(1))
	tlsConfig, _, _ := unstructured.NestedMap(endpoints[0].(map[string]any), "tlsConfig")
	g.Expect(tlsConfig).NotTo(HaveKey("insecureSkipVerify"))
	g.Expect(tlsConfig).To(HaveKeyWithValue("ca", HaveKeyWithValue("secret", And(
		HaveKeyWithValue("name", "metrics-cert"), HaveKeyWithValue("key", "ca.crt")))))
	g.Expect(tlsConfig).To(HaveKeyWithValue("serverName",
		"memcached-operator-controller-manager-metrics-service."+helmNamespace+".svc"))
	g.Expect(certified).To(HaveKey("Service/" + helmNamespace + "/memcached-operator-controller-manager-metrics-service"))
}

// checkNamespacedRendering renders the chart for two namespaces, with a
// ServiceMonitor and a NetworkPolicy: the manager's rules are in a Role in
// each, and in no ClusterRole.
func checkNamespacedRendering(t *testing.T, helm *helmRun, chart, kubeVersion, values string) {
	g := NewWithT(t)
	rendered := decodeObjects(g, helm.must("template", helmRelease, chart, "--namespace", helmNamespace,
		"--kube-version", kubeVersion, "-f", values))
	byID := indexObjects(rendered)
	managerRules := configManagerRules(g)
	for _, ns := range []string{"a", "b"} {
		role := byID["Role/"+ns+"/memcached-operator-manager-role"]
		g.Expect(role).NotTo(BeNil(), "no manager Role in namespace %s", ns)
		g.Expect(policyRules(g, role)).To(Equal(managerRules))
		binding := byID["RoleBinding/"+ns+"/memcached-operator-manager-rolebinding"]
		g.Expect(binding).NotTo(BeNil(), "no manager RoleBinding in namespace %s", ns)
		g.Expect(binding.Object["roleRef"]).To(And(HaveKeyWithValue("kind", "Role"),
			HaveKeyWithValue("name", "memcached-operator-manager-role")))
		g.Expect(binding.Object["subjects"]).To(ConsistOf(And(HaveKeyWithValue("kind", "ServiceAccount"),
			HaveKeyWithValue("name", "memcached-operator-controller-manager"), HaveKeyWithValue("namespace", helmNamespace))))
	}
	for _, obj := range rendered {
		switch obj.GetKind() {
		case "ClusterRole":
			g.Expect(policyRules(g, obj)).NotTo(Equal(managerRules), "ClusterRole %s grants the manager's rules", obj.GetName())
			g.Expect(obj.GetName()).NotTo(HaveSuffix("manager-role"))
		case "ClusterRoleBinding":
			g.Expect(obj.GetName()).NotTo(HaveSuffix("manager-rolebinding"))
		case "Role", "RoleBinding":
			if strings.Contains(obj.GetName(), "manager-role") {
				g.Expect(obj.GetNamespace()).To(BeElementOf("a", "b"))
			}
		}
	}
	g.Expect(byID).To(HaveKey("Role/" + helmNamespace + "/memcached-operator-leader-election-role"))
	g.Expect(byID).To(HaveKey("RoleBinding/" + helmNamespace + "/memcached-operator-leader-election-rolebinding"))
	g.Expect(byID).To(HaveKey("ClusterRole//memcached-operator-metrics-auth-role"))
	g.Expect(byID).To(HaveKey("ClusterRoleBinding//memcached-operator-metrics-auth-rolebinding"))
	g.Expect(byID).To(HaveKey("ClusterRole//memcached-operator-metrics-reader"))

	manager := deploymentOf(g, byID["Deployment/"+helmNamespace+"/memcached-operator-controller-manager"]).Spec.Template.Spec.Containers[0]
	g.Expect(manager.Env).To(ContainElement(And(HaveField("Name", "WATCH_NAMESPACE"), HaveField("Value", "a,b"))))

	monitor := byID["ServiceMonitor/"+helmNamespace+"/memcached-operator-controller-manager-metrics-monitor"]
	g.Expect(monitor).NotTo(BeNil(), "no ServiceMonitor")
	endpoints, _, err := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(endpoints).To(ConsistOf(And(HaveKeyWithValue("port", "https"), HaveKeyWithValue("scheme", "https"),
		HaveKeyWithValue("path", "/metrics"))))
	service := byID["Service/"+helmNamespace+"/memcached-operator-controller-manager-metrics-service"]
	g.Expect(service).NotTo(BeNil(), "no metrics Service")
	selector, _, err := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	g.Expect(err).NotTo(HaveOccurred())
	for k, v := range selector {
		g.Expect(service.GetLabels()).To(HaveKeyWithValue(k, v), "the ServiceMonitor does not select the metrics Service")
	}

	policy := byID["NetworkPolicy/"+helmNamespace+"/memcached-operator-allow-metrics-traffic"]
	g.Expect(policy).NotTo(BeNil(), "no NetworkPolicy")
	ingress, _, err := unstructured.NestedSlice(policy.Object, "spec", "ingress")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fmt.Sprint(ingress)).To(And(ContainSubstring("port:8443"), ContainSubstring("metrics:enabled")))
}

// checkInstallUpgradeUninstall installs the chart with a ServiceMonitor in a
// namespace that enforces the restricted Pod Security Standard, upgrades it
// to two replicas watching two namespaces, and uninstalls it.
func checkInstallUpgradeUninstall(t *testing.T, helm *helmRun, own *simcluster.Cluster, chart string) {
	g := NewWithT(t)
	ctx := t.Context()
	c, err := client.New(own.Config, client.Options{Scheme: k8sClient.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	kubectlOn := func(args ...string) string {
		out, err := runKubectlAs(own.Kubeconfig, args...)
		g.Expect(err).NotTo(HaveOccurred(), out)
		return out
	}
	kubectlOn("apply", "--server-side", "-f", testCRDsDir)
	kubectlOn("wait", "--for=condition=Established", "--timeout=60s", "-f", testCRDsDir)
	for _, ns := range []string{helmNamespace, "a", "b"} {
		labels := restricted
		if ns != helmNamespace {
			labels = nil
		}
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}})).To(Succeed())
	}

	out := helm.must("install", helmRelease, chart, "--namespace", helmNamespace, "--set", "metrics.serviceMonitor.enabled=true")
	g.Expect(out).To(ContainSubstring("manages the Memcacheds of every namespace"))
	installed := decodeObjects(g, helm.must("get", "manifest", helmRelease, "--namespace", helmNamespace))
	g.Expect(objectIDs(installed)).To(ContainElements(
		"Deployment/"+helmNamespace+"/memcached-operator-controller-manager",
		"ServiceAccount/"+helmNamespace+"/memcached-operator-controller-manager",
		"ClusterRole//memcached-operator-manager-role",
		"ClusterRoleBinding//memcached-operator-manager-rolebinding",
		"Role/"+helmNamespace+"/memcached-operator-leader-election-role",
		"RoleBinding/"+helmNamespace+"/memcached-operator-leader-election-rolebinding",
		"ClusterRole//memcached-operator-metrics-reader",
		"Service/"+helmNamespace+"/memcached-operator-controller-manager-metrics-service",
		"ServiceMonitor/"+helmNamespace+"/memcached-operator-controller-manager-metrics-monitor",
		"CustomResourceDefinition//"+crdName,
	))
	for _, obj := range installed {
		g.Expect(getObject(ctx, c, obj)).To(Succeed(), "%s is not on the cluster", objectID(obj))
	}
	kubectlOn("wait", "--for=condition=Established", "--timeout=60s", "crd/"+crdName)
	deployment := &appsv1.Deployment{}
	deploymentKey := client.ObjectKey{Namespace: helmNamespace, Name: "memcached-operator-controller-manager"}
	// Its pod is admitted where restricted is enforced, and kwok runs it.
	g.Eventually(func(g Gomega) int32 {
		g.Expect(c.Get(ctx, deploymentKey, deployment)).To(Succeed())
		return deployment.Status.ReadyReplicas
	}).Should(Equal(int32(1)))
	serviceAccount := "system:serviceaccount:" + helmNamespace + ":memcached-operator-controller-manager"
	g.Expect(kubectlOn("auth", "can-i", "list", "memcacheds.cache.example.com", "--all-namespaces", "--as", serviceAccount)).
		To(HavePrefix("yes"))
	// The pod `helm test` runs is admitted where restricted is enforced (kwok
	// would not run its command).
	hooks := filepath.Join(t.TempDir(), "hooks.yaml")
	g.Expect(os.WriteFile(hooks, []byte(helm.must("get", "hooks", helmRelease, "--namespace", helmNamespace)), 0o600)).To(Succeed())
	g.Expect(kubectlOn("apply", "--server-side", "--dry-run=server", "-f", hooks)).To(ContainSubstring("pod/memcached-operator-test-connection"))

	// A Memcached outlives the release: the CRD is kept.
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "cache"}, Spec: cachev1alpha1.MemcachedSpec{Size: 1}}
	g.Expect(c.Create(ctx, mc)).To(Succeed())

	out = helm.must("upgrade", helmRelease, chart, "--namespace", helmNamespace, "--reuse-values",
		"--set", "replicas=2", "--set", "watchNamespaces={a,b}", "--set", "networkPolicy.enabled=true")
	g.Expect(out).To(ContainSubstring("namespaces a, b only"))
	g.Eventually(func(g Gomega) int32 {
		g.Expect(c.Get(ctx, deploymentKey, deployment)).To(Succeed())
		g.Expect(*deployment.Spec.Replicas).To(Equal(int32(2)))
		g.Expect(deployment.Spec.Template.Spec.Containers[0].Env).To(ContainElement(
			And(HaveField("Name", "WATCH_NAMESPACE"), HaveField("Value", "a,b"))))
		return deployment.Status.ReadyReplicas
	}).Should(Equal(int32(2)))
	for _, ns := range []string{"a", "b"} {
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "memcached-operator-manager-role"}, &rbacv1.Role{})).To(Succeed())
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "memcached-operator-manager-rolebinding"}, &rbacv1.RoleBinding{})).
			To(Succeed())
		g.Expect(kubectlOn("auth", "can-i", "list", "memcacheds.cache.example.com", "-n", ns, "--as", serviceAccount)).
			To(HavePrefix("yes"))
	}
	g.Eventually(func() error {
		return c.Get(ctx, client.ObjectKey{Name: "memcached-operator-manager-role"}, &rbacv1.ClusterRole{})
	}).Should(Satisfy(apierrors.IsNotFound), "the manager's ClusterRole is left")
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "memcached-operator-manager-rolebinding"}, &rbacv1.ClusterRoleBinding{})).
		To(Satisfy(apierrors.IsNotFound))
	out, err = runKubectlAs(own.Kubeconfig, "auth", "can-i", "list", "memcacheds.cache.example.com", "-n", "default", "--as", serviceAccount)
	g.Expect(err).To(HaveOccurred(), "the operator may still list Memcacheds outside its namespaces")
	g.Expect(out).To(HavePrefix("no"))
	g.Expect(getObject(ctx, c, objectRef("networking.k8s.io/v1", "NetworkPolicy", helmNamespace,
		"memcached-operator-allow-metrics-traffic"))).To(Succeed())

	upgraded := decodeObjects(g, helm.must("get", "manifest", helmRelease, "--namespace", helmNamespace))
	helm.must("uninstall", helmRelease, "--namespace", helmNamespace)
	for _, obj := range upgraded {
		if obj.GetKind() == "CustomResourceDefinition" {
			continue
		}
		g.Eventually(func() error { return getObject(ctx, c, obj) }).Should(Satisfy(apierrors.IsNotFound),
			"%s is left after the uninstall", objectID(obj))
	}
	g.Expect(getObject(ctx, c, objectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crdName))).
		To(Succeed(), "the CRD was deleted despite helm.sh/resource-policy: keep")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(mc), &cachev1alpha1.Memcached{})).To(Succeed())
	g.Expect(helm.must("list", "--all-namespaces", "--short")).To(BeEmpty())
}

// checkUpgradeFromTheOldSelector installs a release of the chart as it was
// when its Deployment selected pods by app.kubernetes.io/instance too, and
// upgrades it to this chart: the Deployment keeps the selector it has, which
// cannot change, rather than the upgrade failing.
func checkUpgradeFromTheOldSelector(t *testing.T, helm *helmRun, own *simcluster.Cluster, chart string) {
	g := NewWithT(t)
	ctx := t.Context()
	const release = "legacy"
	oldChart := filepath.Join(t.TempDir(), "memcached-operator")
	g.Expect(os.CopyFS(oldChart, os.DirFS(chart))).To(Succeed())
	helpers := filepath.Join(oldChart, "templates", "_helpers.tpl")
	data, err := os.ReadFile(helpers)
	g.Expect(err).NotTo(HaveOccurred())
	define := "{{- define \"memcached-operator.selectorLabels\" -}}\n"
	g.Expect(string(data)).To(ContainSubstring(define))
	data = []byte(strings.Replace(string(data), define, define+"app.kubernetes.io/instance: {{ .Release.Name }}\n", 1))
	g.Expect(os.WriteFile(helpers, data, 0o600)).To(Succeed())

	c, err := client.New(own.Config, client.Options{Scheme: k8sClient.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	values := []string{"--namespace", release, "--set", "crds.install=false", "--set", "rbac.helpers.enabled=false"}
	helm.must(append([]string{"install", release, oldChart, "--create-namespace"}, values...)...)
	key := client.ObjectKey{Namespace: release, Name: "legacy-memcached-operator-controller-manager"}
	deployment := &appsv1.Deployment{}
	g.Expect(c.Get(ctx, key, deployment)).To(Succeed())
	oldSelector := deployment.Spec.Selector.DeepCopy()
	g.Expect(oldSelector.MatchLabels).To(HaveKeyWithValue("app.kubernetes.io/instance", release))

	helm.must(append([]string{"upgrade", release, chart}, values...)...)
	g.Expect(c.Get(ctx, key, deployment)).To(Succeed())
	g.Expect(deployment.Spec.Selector).To(Equal(oldSelector))
	g.Expect(deployment.Labels).To(HaveKeyWithValue("helm.sh/chart", HavePrefix("memcached-operator-")))
	g.Eventually(func(g Gomega) int32 {
		g.Expect(c.Get(ctx, key, deployment)).To(Succeed())
		g.Expect(deployment.Status.ObservedGeneration).To(Equal(deployment.Generation))
		return deployment.Status.ReadyReplicas
	}).Should(Equal(int32(1)))
	helm.must("uninstall", release, "--namespace", release)
}

// controlPlaneVersion returns the Kubernetes version the control plane is
// built from, as hack/tools/kube (or KUBE_TOOLS) pins it.
func controlPlaneVersion(t *testing.T) string {
	t.Helper()
	// The tools module the control plane was built from (Makefile's KUBE_TOOLS).
	tools := cmp.Or(os.Getenv("KUBE_TOOLS"), "kube")
	goMod := filepath.Join(repoRoot, "hack", "tools", tools, "go.mod")
	data, err := os.ReadFile(goMod)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?k8s\.io/kubernetes (v\d+\.\d+\.\d+)\s*$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s does not require k8s.io/kubernetes", goMod)
	}
	return string(m[1])
}

// decodeObjects decodes the YAML stream that helm prints.
func decodeObjects(g Gomega, manifests string) []*unstructured.Unstructured {
	var objects []*unstructured.Unstructured
	decoder := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := decoder.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objects
		}
		g.Expect(err).NotTo(HaveOccurred())
		if len(obj.Object) > 0 {
			objects = append(objects, obj)
		}
	}
}

// withoutHooks returns the objects that are not Helm hooks: those that
// helm install installs.
func withoutHooks(objects []*unstructured.Unstructured) []*unstructured.Unstructured {
	return slices.DeleteFunc(objects, func(obj *unstructured.Unstructured) bool {
		_, hook := obj.GetAnnotations()["helm.sh/hook"]
		return hook
	})
}

// objectID identifies an object as Kind/namespace/name.
func objectID(obj *unstructured.Unstructured) string {
	return obj.GetKind() + "/" + obj.GetNamespace() + "/" + obj.GetName()
}

func objectIDs(objects []*unstructured.Unstructured) []string {
	ids := make([]string, 0, len(objects))
	for _, obj := range objects {
		ids = append(ids, objectID(obj))
	}
	return ids
}

func indexObjects(objects []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	byID := make(map[string]*unstructured.Unstructured, len(objects))
	for _, obj := range objects {
		byID[objectID(obj)] = obj
	}
	return byID
}

// objectRef returns an empty object of that kind and name, to get.
func objectRef(apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(apiVersion)
	obj.SetKind(kind)
	obj.SetNamespace(namespace)
	obj.SetName(name)
	return obj
}

// getObject reads the object of obj's kind, namespace and name from the
// cluster.
func getObject(ctx context.Context, c client.Client, obj *unstructured.Unstructured) error {
	current := objectRef(obj.GetAPIVersion(), obj.GetKind(), obj.GetNamespace(), obj.GetName())
	return c.Get(ctx, client.ObjectKeyFromObject(current), current)
}

// configManagerRules returns the rules of config/rbac/role.yaml, which
// controller-gen generates.
func configManagerRules(g Gomega) []rbacv1.PolicyRule {
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "role.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	objects := decodeObjects(g, string(data))
	g.Expect(objects).To(HaveLen(1))
	return policyRules(g, objects[0])
}

// policyRules returns the rules of a Role or ClusterRole.
func policyRules(g Gomega, obj *unstructured.Unstructured) []rbacv1.PolicyRule {
	g.ExpectWithOffset(1, obj).NotTo(BeNil())
	role := &rbacv1.ClusterRole{}
	g.ExpectWithOffset(1, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, role)).To(Succeed())
	return role.Rules
}

func deploymentOf(g Gomega, obj *unstructured.Unstructured) *appsv1.Deployment {
	g.ExpectWithOffset(1, obj).NotTo(BeNil(), "no Deployment")
	deployment := &appsv1.Deployment{}
	g.ExpectWithOffset(1, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, deployment)).To(Succeed())
	return deployment
}
