package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"example.com/memcached-operator/test/internal/localrun"
)

// The settings of the manager that are not a flag or a variable of their own:
// each is what the manager makes of one or more of them.
const (
	// settingUIDMode is the memcached pods' UID mode: --memcached-uid when
	// given, else MEMCACHED_UID, else fixed (cmd/uidmode.go).
	settingUIDMode = "UID mode (--memcached-uid, else MEMCACHED_UID)"
	// settingWatchNamespaces is WATCH_NAMESPACE, resolved in the pod.
	settingWatchNamespaces = "watched namespaces (WATCH_NAMESPACE)"
	everyNamespace         = "every namespace"
)

// olmTargetNamespaces is the annotation OLM puts on the operator's pods: the
// OperatorGroup's target namespaces, empty with AllNamespaces.
const olmTargetNamespaces = "olm.targetNamespaces"

// managerSettings are the manager's effective settings in one install path,
// by name: "--flag" for each argument (a flag without a value is "true"),
// "env NAME" for each environment variable (its value, or where it comes
// from), settingUIDMode and settingWatchNamespaces for the settings that a
// flag or a variable may give, and the Deployment's replicas, the manager's
// command, resources and security contexts. The operator's own image is left
// out: each path names it its own way.
type managerSettings map[string]string

// String lists the settings, one a line, in the order of their names.
func (s managerSettings) String() string {
	lines := make([]string, 0, len(s))
	for name, value := range s {
		lines = append(lines, fmt.Sprintf("  %s: %q", name, value))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// podContext is what the manager's environment is resolved against: the
// namespace of its pod and the annotations on it.
type podContext struct {
	namespace   string
	annotations map[string]string
}

// expectedDifference is a setting in which two install paths differ on
// purpose: want is its value in the reference path, got in the other.
type expectedDifference struct {
	setting, want, got string
	reason             string
}

// TestEveryInstallPathRunsTheSameManager renders every install path, with no
// cluster, and compares the manager each runs: config/default, the chart's
// defaults, dist/install.yaml and the OLM bundle's CSV (in AllNamespaces
// mode); config/namespaced, the chart watching its release namespace and the
// CSV in OwnNamespace mode; config/openshift and the chart with
// memcachedPodUID=platform; config/metrics-tls and the chart with
// metrics.certSecretName. A difference fails the test unless it is listed
// below with its reason. docs/install-paths.md tabulates how each path sets
// each setting.
func TestEveryInstallPathRunsTheSameManager(t *testing.T) {
	helmBinary, manifest := os.Getenv("HELM_BINARY"), os.Getenv("INSTALL_MANIFEST")
	if helmBinary == "" || manifest == "" {
		t.Fatal("HELM_BINARY and INSTALL_MANIFEST must be set: run this test with 'make test-e2e', which runs make helm and make build-installer")
	}
	g := NewWithT(t)
	inNamespace := podContext{namespace: helmNamespace}

	kustomized := func(t *testing.T, g Gomega, dir string) managerSettings {
		objects, err := localrun.Render(t.Context(), kubectl, filepath.Join(repoRoot, "config", dir))
		g.Expect(err).NotTo(HaveOccurred())
		settings := settingsOf(g, "config/"+dir, managerDeployment(g, "config/"+dir, objects), inNamespace)
		t.Logf("The manager of config/%s:\n%s", dir, settings)
		return settings
	}
	chart, err := filepath.Abs(filepath.Join(repoRoot, "charts", "memcached-operator"))
	g.Expect(err).NotTo(HaveOccurred())
	helm := &helmRun{t: t, binary: helmBinary, kubeconfig: filepath.Join(t.TempDir(), "none"), home: t.TempDir()}
	charted := func(g Gomega, name string, args ...string) managerSettings {
		out := helm.must(append([]string{"template", helmRelease, chart, "--namespace", helmNamespace,
			"--kube-version", controlPlaneVersion(t)}, args...)...)
		return settingsOf(g, name, managerDeployment(g, name, withoutHooks(decodeObjects(g, out))), inNamespace)
	}
	csv := renderCSV(t)

	// OLM's MEMCACHED_UID=auto is the one difference of the bundle: the
	// kustomize and Helm installs ask for the mode their cluster needs.
	uidAuto := expectedDifference{setting: settingUIDMode, want: "fixed", got: "auto",
		reason: "the bundle sets MEMCACHED_UID=auto, so that one CSV works on OpenShift, whose restricted-v2 refuses uid 11211, " +
			"and elsewhere; config/default and the chart default to fixed, and a Subscription's config.env can set MEMCACHED_UID"}

	t.Run("config/default", func(t *testing.T) {
		g := NewWithT(t)
		want := kustomized(t, g, "default")
		release, err := os.ReadFile(manifest)
		g.Expect(err).NotTo(HaveOccurred())
		compareSettings(t, "config/default", want, "the chart's defaults", charted(g, "the chart's defaults"))
		// dist/install.yaml is rendered from config/operator, config/default
		// without the CRD, by make build-installer, which a change to
		// config/ needs to be run again.
		released := manifest + " (written by make build-installer)"
		compareSettings(t, "config/default", want, released,
			settingsOf(g, released, managerDeployment(g, released, decodeObjects(g, string(release))), inNamespace))
		compareSettings(t, "config/default", want, "the CSV in AllNamespaces mode",
			settingsOf(g, "the CSV", csv, podContext{annotations: map[string]string{olmTargetNamespaces: ""}}), uidAuto)
	})

	t.Run("config/namespaced", func(t *testing.T) {
		g := NewWithT(t)
		want := kustomized(t, g, "namespaced")
		g.Expect(want).To(HaveKeyWithValue(settingWatchNamespaces, helmNamespace), "config/namespaced watches its own namespace")
		compareSettings(t, "config/namespaced", want, "the chart with watchNamespaces={"+helmNamespace+"}",
			charted(g, "the chart with watchNamespaces", "--set", "watchNamespaces={"+helmNamespace+"}"))
		compareSettings(t, "config/namespaced", want, "the CSV in OwnNamespace mode",
			settingsOf(g, "the CSV", csv, podContext{namespace: helmNamespace,
				annotations: map[string]string{olmTargetNamespaces: helmNamespace}}), uidAuto)
	})

	t.Run("config/openshift", func(t *testing.T) {
		g := NewWithT(t)
		want := kustomized(t, g, "openshift")
		g.Expect(want).To(HaveKeyWithValue(settingUIDMode, "platform"), "config/openshift leaves the uid to the platform")
		// The chart passes --memcached-uid=platform where config/openshift
		// sets MEMCACHED_UID=platform: the same mode.
		compareSettings(t, "config/openshift", want, "the chart with memcachedPodUID=platform",
			charted(g, "the chart with memcachedPodUID=platform", "--set", "memcachedPodUID=platform"))
	})

	t.Run("config/metrics-tls", func(t *testing.T) {
		g := NewWithT(t)
		want := kustomized(t, g, "metrics-tls")
		g.Expect(want).To(HaveKey("--metrics-cert-path"))
		compareSettings(t, "config/metrics-tls", want, "the chart with metrics.certSecretName",
			charted(g, "the chart with metrics.certSecretName", "--set", "metrics.certSecretName=metrics-server-cert"))
	})
}

// renderCSV generates the OLM bundle from config/ with hack/tools/bundle, as
// make bundle does, into a directory of the test, and returns the Deployment
// of its CSV.
func renderCSV(t *testing.T) *appsv1.Deployment {
	t.Helper()
	g := NewWithT(t)
	root, err := filepath.Abs(repoRoot)
	g.Expect(err).NotTo(HaveOccurred())
	kustomize := filepath.Join(root, "bin", "kustomize")
	g.Expect(kustomize).To(BeAnExistingFile(), "the bundle generator needs bin/kustomize: run 'make kustomize'")
	goBinary, err := exec.LookPath("go")
	g.Expect(err).NotTo(HaveOccurred(), "the bundle generator runs with go")
	out := t.TempDir()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), goBinary, "-C", filepath.Join(root, "hack", "tools", "bundle"), "run", ".",
		"--config-dir", filepath.Join(root, "config"), "--kustomize", kustomize, "--image", "example.com/memcached-operator:v0.1.0",
		"--out", filepath.Join(out, "bundle"), "--dockerfile", filepath.Join(out, "bundle.Dockerfile"))
	cmd.Stderr = &stderr
	g.Expect(cmd.Run()).To(Succeed(), "hack/tools/bundle failed: %s", stderr.String())

	path := filepath.Join(out, "bundle", "manifests", "memcached-operator.clusterserviceversion.yaml")
	data, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred())
	objects := decodeObjects(g, string(data))
	g.Expect(objects).To(HaveLen(1))
	deployments, _, err := unstructured.NestedSlice(objects[0].Object, "spec", "install", "spec", "deployments")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(deployments).To(HaveLen(1), "the CSV installs one Deployment")
	spec, ok := deployments[0].(map[string]any)["spec"].(map[string]any)
	g.Expect(ok).To(BeTrue(), "the CSV's Deployment has no spec")
	deployment := &appsv1.Deployment{}
	g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(spec, &deployment.Spec)).To(Succeed())
	return deployment
}

// managerDeployment returns the one Deployment of objects, rendered by path.
func managerDeployment(g Gomega, path string, objects []*unstructured.Unstructured) *appsv1.Deployment {
	var found []*unstructured.Unstructured
	for _, obj := range objects {
		if obj.GetKind() == "Deployment" {
			found = append(found, obj)
		}
	}
	g.ExpectWithOffset(1, found).To(HaveLen(1), "%s renders %d Deployments, not the manager's alone", path, len(found))
	return deploymentOf(g, found[0])
}

// settingsOf returns the effective settings of the manager container of
// deployment, rendered by path, with its environment resolved in pod.
func settingsOf(g Gomega, path string, deployment *appsv1.Deployment, pod podContext) managerSettings {
	spec := deployment.Spec.Template.Spec
	i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	g.ExpectWithOffset(1, i).NotTo(Equal(-1), "%s: the Deployment has no container named manager", path)
	manager := spec.Containers[i]
	settings := managerSettings{
		"command":                   strings.Join(manager.Command, " "),
		"resources":                 resourcesString(manager.Resources),
		"pod securityContext":       jsonString(g, spec.SecurityContext),
		"container securityContext": jsonString(g, manager.SecurityContext),
		"replicas":                  "1",
	}
	if deployment.Spec.Replicas != nil {
		settings["replicas"] = strconv.Itoa(int(*deployment.Spec.Replicas))
	}
	for _, arg := range manager.Args {
		name, value, hasValue := strings.Cut(arg, "=")
		g.ExpectWithOffset(1, name).To(HavePrefix("-"), "%s: the manager's argument %q is not a flag: give flags as --name=value", path, arg)
		if !hasValue {
			value = "true"
		}
		// Go's flag package takes -name as --name, and the last of a flag
		// given twice.
		settings["--"+strings.TrimLeft(name, "-")] = value
	}
	for _, env := range manager.Env {
		settings["env "+env.Name] = envValue(g, path, env, pod)
	}

	// The UID mode: the flag wins over the variable (cmd/uidmode.go).
	settings[settingUIDMode] = "fixed"
	if mode, ok := settings["env MEMCACHED_UID"]; ok && mode != "" {
		settings[settingUIDMode] = mode
	}
	if mode, ok := settings["--memcached-uid"]; ok {
		settings[settingUIDMode] = mode
	}
	delete(settings, "env MEMCACHED_UID")
	delete(settings, "--memcached-uid")
	// The default images: the flag wins over the variable (cmd/main.go).
	for flag, env := range map[string]string{"--memcached-image": "env RELATED_IMAGE_MEMCACHED", "--exporter-image": "env RELATED_IMAGE_EXPORTER"} {
		if _, given := settings[flag]; !given && settings[env] != "" {
			settings[flag] = settings[env]
		}
		delete(settings, env)
	}
	// The watched namespaces: every one when WATCH_NAMESPACE is unset or
	// empty (cmd/main.go).
	settings[settingWatchNamespaces] = everyNamespace
	if namespaces := settings["env WATCH_NAMESPACE"]; namespaces != "" {
		settings[settingWatchNamespaces] = namespaces
	}
	delete(settings, "env WATCH_NAMESPACE")
	return settings
}

// envValue returns the value of env in pod: its value, or the field of the pod
// it refers to; a reference to a resource of the container, a Secret or a
// ConfigMap is described, since those are compared on their own.
func envValue(g Gomega, path string, env corev1.EnvVar, pod podContext) string {
	from := env.ValueFrom
	switch {
	case from == nil:
		return env.Value
	case from.FieldRef != nil:
		field := from.FieldRef.FieldPath
		if field == "metadata.namespace" {
			g.ExpectWithOffset(2, pod.namespace).NotTo(BeEmpty(), "%s: %s needs the pod's namespace", path, env.Name)
			return pod.namespace
		}
		if key, ok := strings.CutPrefix(field, "metadata.annotations['"); ok {
			key = strings.TrimSuffix(key, "']")
			value, ok := pod.annotations[key]
			g.ExpectWithOffset(2, ok).To(BeTrue(), "%s: %s needs the pod's annotation %s", path, env.Name, key)
			return value
		}
		return "fieldRef " + field
	case from.ResourceFieldRef != nil:
		ref := from.ResourceFieldRef
		value := "resourceFieldRef " + ref.ContainerName + "/" + ref.Resource
		// A divisor of 0, as a typed object serializes the unset one, is 1.
		if !ref.Divisor.IsZero() && ref.Divisor.String() != "1" {
			value += " divisor " + ref.Divisor.String()
		}
		return value
	case from.SecretKeyRef != nil:
		return "secretKeyRef " + from.SecretKeyRef.Name + "/" + from.SecretKeyRef.Key
	case from.ConfigMapKeyRef != nil:
		return "configMapKeyRef " + from.ConfigMapKeyRef.Name + "/" + from.ConfigMapKeyRef.Key
	}
	return jsonString(g, from)
}

// resourcesString writes the requests and limits in canonical quantities, so
// that 0.5 and 500m compare equal.
func resourcesString(r corev1.ResourceRequirements) string {
	list := func(l corev1.ResourceList) string {
		parts := make([]string, 0, len(l))
		for name, quantity := range l {
			parts = append(parts, string(name)+"="+quantity.String())
		}
		slices.Sort(parts)
		return strings.Join(parts, ",")
	}
	return "limits " + list(r.Limits) + "; requests " + list(r.Requests)
}

// jsonString returns v as JSON, as its type marshals it: without the fields
// that are unset.
func jsonString(g Gomega, v any) string {
	data, err := json.Marshal(v)
	g.ExpectWithOffset(2, err).NotTo(HaveOccurred())
	return string(data)
}

// compareSettings fails t for each setting in which got, the settings of the
// path gotName, differ from want, those of wantName, unless expected lists the
// difference; and for each difference listed that is not there.
func compareSettings(t *testing.T, wantName string, want managerSettings, gotName string, got managerSettings, expected ...expectedDifference) {
	t.Helper()
	names := make([]string, 0, len(want)+len(got))
	for name := range want {
		names = append(names, name)
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	show := func(s managerSettings, name string) string {
		if value, ok := s[name]; ok {
			return strconv.Quote(value)
		}
		return "unset"
	}
	used := make([]bool, len(expected))
	var unexpected []string
	for _, name := range names {
		wantValue, wantOK := want[name]
		gotValue, gotOK := got[name]
		if wantOK == gotOK && wantValue == gotValue {
			continue
		}
		i := slices.IndexFunc(expected, func(d expectedDifference) bool {
			return d.setting == name && d.want == wantValue && d.got == gotValue
		})
		if i >= 0 {
			used[i] = true
			t.Logf("%s: %s in %s, %s in %s, as expected: %s", name, show(want, name), wantName, show(got, name), gotName, expected[i].reason)
			continue
		}
		unexpected = append(unexpected, fmt.Sprintf("  %s: %s in %s, %s in %s", name, show(want, name), wantName, show(got, name), gotName))
	}
	if len(unexpected) > 0 {
		t.Errorf("%s runs another manager than %s; make the paths agree, or list the difference with its reason in "+
			"TestEveryInstallPathRunsTheSameManager (and docs/install-paths.md):\n%s", gotName, wantName, strings.Join(unexpected, "\n"))
	}
	for i, d := range expected {
		if !used[i] {
			t.Errorf("the test lists %s as %q in %s and %q in %s, which is not what they render: correct or remove the listed difference",
				d.setting, d.want, wantName, d.got, gotName)
		}
	}
}
