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

package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

const (
	testImage   = "registry.example.com/memcached-operator:v0.1.0-test"
	testVersion = "0.1.0"
	configDir   = "../../../config"
)

// kustomizeBin is the kustomize binary the test runs: $KUSTOMIZE, or the
// repository's bin/kustomize (`make kustomize`).
func kustomizeBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("KUSTOMIZE")
	if bin == "" {
		bin = "../../../bin/kustomize"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the kustomize binary is missing (%v): run `make kustomize` in the repository root, "+
			"or set KUSTOMIZE to a kustomize binary (a relative path is relative to hack/tools/bundle)", err)
	}
	return bin
}

// generateInto runs the generator as `go run` would, into dir/bundle and
// dir/bundle.Dockerfile, and returns the bundle directory.
func generateInto(t *testing.T, kustomize, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "bundle")
	var stdout, stderr bytes.Buffer
	err := run([]string{
		"--config-dir", configDir,
		"--kustomize", kustomize,
		"--image", testImage,
		"--version", testVersion,
		"--out", out,
		"--dockerfile", filepath.Join(dir, "bundle.Dockerfile"),
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("generating the bundle: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	return out
}

// readTree returns the files under dir by their relative path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files[rel] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// render is config/default as kustomize renders it.
type render struct {
	objs []*unstructured.Unstructured
}

func (r render) find(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range r.objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("config/default renders no %s %s", kind, name)
	return nil
}

func (r render) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func fromUnstructured[T any](t *testing.T, obj *unstructured.Unstructured) *T {
	t.Helper()
	v := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, v); err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
	return v
}

// boundRules are the rules of the roles of kind roleKind that bindings of
// kind bindingKind grant to the ServiceAccount, in the order of the roles'
// names.
func boundRules(t *testing.T, r render, bindingKind, roleKind, sa, ns string) (rules []rbacv1.PolicyRule, roleNames []string) {
	t.Helper()
	for _, b := range r.ofKind(bindingKind) {
		binding := fromUnstructured[rbacv1.ClusterRoleBinding](t, b) // a RoleBinding has the same fields
		for _, s := range binding.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == ns && binding.RoleRef.Kind == roleKind {
				roleNames = append(roleNames, binding.RoleRef.Name)
			}
		}
	}
	slices.Sort(roleNames)
	for _, name := range roleNames {
		rules = append(rules, fromUnstructured[rbacv1.ClusterRole](t, r.find(t, roleKind, name)).Rules...)
	}
	return rules, roleNames
}

// fixture is one generated bundle and what config/default renders.
type fixture struct {
	kustomize  string
	dirA, dirB string // two runs: dirX/bundle and dirX/bundle.Dockerfile
	out        string // dirA/bundle
	rendered   render
	bundle     *manifests.Bundle
	csv        *operatorsv1alpha1.ClusterServiceVersion
	deploy     *unstructured.Unstructured // the rendered Deployment
	sa, ns     string                     // its ServiceAccount and namespace
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{kustomize: kustomizeBin(t)}
	tmp := t.TempDir()
	f.dirA, f.dirB = filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	f.out = generateInto(t, f.kustomize, f.dirA)
	generateInto(t, f.kustomize, f.dirB)

	objs, err := kustomizeBuild(f.kustomize, filepath.Join(configDir, "default"))
	if err != nil {
		t.Fatal(err)
	}
	f.rendered = render{objs: objs}
	f.bundle, err = manifests.GetBundleFromDir(f.out)
	if err != nil {
		t.Fatalf("loading the bundle: %v", err)
	}
	if f.csv = f.bundle.CSV; f.csv == nil {
		t.Fatal("the bundle has no CSV")
	}
	deploys := f.rendered.ofKind("Deployment")
	if len(deploys) != 1 {
		t.Fatalf("config/default renders %d Deployments", len(deploys))
	}
	f.deploy = deploys[0]
	f.sa, _, _ = unstructured.NestedString(f.deploy.Object, "spec", "template", "spec", "serviceAccountName")
	f.ns = f.deploy.GetNamespace()
	return f
}

// TestBundle generates the bundle from the real config/ and checks it.
func TestBundle(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name  string
		check func(*testing.T, *fixture)
	}{
		{"deterministic", checkDeterministic},
		{"CSV identity", checkCSVIdentity},
		{"deployment", checkDeployment},
		{"clusterPermissions", checkClusterPermissions},
		{"permissions", checkPermissions},
		{"no cluster-wide Secrets", checkNoClusterWideSecrets},
		{"CRD", checkCRD},
		{"alm-examples", checkAlmExamples},
		{"extra manifests", checkExtraManifests},
		{"annotations and Dockerfile", checkAnnotationsAndDockerfile},
		{"validation", checkValidation},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, f) })
	}
}

func checkDeterministic(t *testing.T, f *fixture) {
	a, b := readTree(t, f.dirA), readTree(t, f.dirB)
	if len(a) == 0 {
		t.Fatal("no file written")
	}
	if !reflect.DeepEqual(slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b))) {
		t.Fatalf("two runs wrote different files: %v and %v", slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b)))
	}
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("two runs wrote different bytes to %s", name)
		}
	}
	// A third run over the first one's output changes nothing either.
	generateInto(t, f.kustomize, f.dirA)
	if again := readTree(t, f.dirA); !reflect.DeepEqual(again, a) {
		t.Error("generating over an existing bundle changed it")
	}
}

func checkCSVIdentity(t *testing.T, f *fixture) {
	if f.csv.Name != "memcached-operator.v"+testVersion {
		t.Errorf("CSV name %q", f.csv.Name)
	}
	if got := f.csv.Spec.Version.String(); got != testVersion {
		t.Errorf("CSV version %q, want %q", got, testVersion)
	}
	if got := f.csv.Annotations["containerImage"]; got != testImage {
		t.Errorf("containerImage %q, want %q", got, testImage)
	}
	if _, ok := f.csv.Annotations["createdAt"]; ok {
		t.Error("createdAt is set without --created-at")
	}
	// The CRD's CEL rules use two-variable comprehensions: Kubernetes 1.33
	// is the first to accept them in a CRD.
	if got := f.csv.Spec.MinKubeVersion; got != "1.33.0" {
		t.Errorf("minKubeVersion %q", got)
	}
	if f.csv.Spec.Replaces != "" || f.csv.Annotations["olm.skipRange"] != "" {
		t.Errorf("an upgrade edge without --replaces or --skip-range: replaces %q, skipRange %q",
			f.csv.Spec.Replaces, f.csv.Annotations["olm.skipRange"])
	}
	// No made-up contact: no example.com maintainer, provider or link.
	people, err := json.Marshal([]any{f.csv.Spec.Maintainers, f.csv.Spec.Provider, f.csv.Spec.Links})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(people), "example.com") {
		t.Errorf("placeholder contacts in the CSV: %s", people)
	}
	if strings.Contains(f.csv.Spec.Description, "sidecar") {
		t.Error("the description calls the exporter a sidecar; it is a Deployment of its own")
	}
	if len(f.csv.Spec.Icon) != 1 || f.csv.Spec.Icon[0].MediaType != "image/svg+xml" || f.csv.Spec.Icon[0].Data == "" {
		t.Errorf("icon %+v", f.csv.Spec.Icon)
	}
	for _, mode := range f.csv.Spec.InstallModes {
		if !mode.Supported {
			t.Errorf("install mode %s is not supported", mode.Type)
		}
	}
	if len(f.csv.Spec.InstallModes) != 4 {
		t.Errorf("%d install modes, want 4", len(f.csv.Spec.InstallModes))
	}
}

func checkDeployment(t *testing.T, f *fixture) {
	specs := f.csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs
	if f.csv.Spec.InstallStrategy.StrategyName != "deployment" || len(specs) != 1 {
		t.Fatalf("install strategy %q with %d deployments", f.csv.Spec.InstallStrategy.StrategyName, len(specs))
	}
	got := specs[0]
	want := fromUnstructured[appsv1.Deployment](t, f.deploy)
	if got.Name != want.Name {
		t.Errorf("deployment name %q, want %q", got.Name, want.Name)
	}
	manager := -1
	for i, c := range got.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			manager = i
		}
	}
	if manager < 0 {
		t.Fatal("no manager container")
	}
	c := got.Spec.Template.Spec.Containers[manager]
	if c.Image != testImage {
		t.Errorf("the manager's image is %q, want the --image %q", c.Image, testImage)
	}
	fixedEnv := []corev1.EnvVar{
		{Name: "WATCH_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['olm.targetNamespaces']"}}},
		// Works on OpenShift's restricted-v2 and elsewhere; a Subscription's
		// config.env can override it, which a flag would not allow.
		{Name: "MEMCACHED_UID", Value: "auto"},
	}
	// The default images, from the flags of config/manager to the variables
	// a Subscription's config.env can override.
	wantManager := want.Spec.Template.Spec.Containers[manager]
	imageEnv := make([]corev1.EnvVar, 0, 2)
	for _, image := range []struct{ flag, env string }{
		{"--memcached-image=", "RELATED_IMAGE_MEMCACHED"}, {"--exporter-image=", "RELATED_IMAGE_EXPORTER"},
	} {
		i := slices.IndexFunc(wantManager.Args, func(a string) bool { return strings.HasPrefix(a, image.flag) })
		if i < 0 {
			t.Fatalf("config/default's manager has no %s<image>: %q", image.flag, wantManager.Args)
		}
		imageEnv = append(imageEnv, corev1.EnvVar{Name: image.env, Value: strings.TrimPrefix(wantManager.Args[i], image.flag)})
		if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, image.flag) }) {
			t.Errorf("the manager's arguments %q hold %s, which a Subscription's config.env could not override", c.Args, image.flag)
		}
	}
	wantEnv := slices.Concat(fixedEnv, imageEnv)
	for _, env := range wantEnv {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return equality.Semantic.DeepEqual(e, env) }) {
			t.Errorf("the manager has no %+v: %+v", env, c.Env)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--memcached-uid") }) {
		t.Errorf("the manager's arguments %q set --memcached-uid, which a Subscription's config.env could not override", c.Args)
	}
	// Apart from the image and those variables, the spec is config/default's.
	gotSpec := got.Spec.DeepCopy()
	gc := &gotSpec.Template.Spec.Containers[manager]
	gc.Image = wantManager.Image
	wantSpec := want.Spec.DeepCopy()
	wc := &wantSpec.Template.Spec.Containers[manager]
	wc.Args = slices.DeleteFunc(wc.Args, func(a string) bool {
		return strings.HasPrefix(a, "--memcached-image=") || strings.HasPrefix(a, "--exporter-image=")
	})
	gc.Env = slices.DeleteFunc(gc.Env, func(e corev1.EnvVar) bool {
		return slices.ContainsFunc(wantEnv, func(w corev1.EnvVar) bool { return w.Name == e.Name })
	})
	if len(gc.Env) == 0 {
		gc.Env = wc.Env
	}
	if !equality.Semantic.DeepEqual(*gotSpec, *wantSpec) {
		t.Errorf("the CSV's deployment spec differs from config/default's beyond image and %+v", wantEnv)
	}
	if got.Spec.Template.Spec.ServiceAccountName != f.sa {
		t.Errorf("service account %q, want %q", got.Spec.Template.Spec.ServiceAccountName, f.sa)
	}
}

// checkClusterPermissions: only the metrics endpoint's token and access
// reviews are granted cluster-wide.
func checkClusterPermissions(t *testing.T, f *fixture) {
	_, roleNames := boundRules(t, f.rendered, "ClusterRoleBinding", "ClusterRole", f.sa, f.ns)
	if len(roleNames) < 2 {
		t.Fatalf("want the manager and metrics auth ClusterRoles bound to %s, found %v", f.sa, roleNames)
	}
	perms := f.csv.Spec.InstallStrategy.StrategySpec.ClusterPermissions
	if len(perms) != 1 || perms[0].ServiceAccountName != f.sa {
		t.Fatalf("clusterPermissions %+v, want one for %s", perms, f.sa)
	}
	want := fromUnstructured[rbacv1.ClusterRole](t, f.rendered.find(t, "ClusterRole", "memcached-operator-metrics-auth-role")).Rules
	if !equality.Semantic.DeepEqual(perms[0].Rules, want) {
		t.Errorf("clusterPermissions rules differ from those of the metrics auth ClusterRole\ngot:  %+v\nwant: %+v", perms[0].Rules, want)
	}
	for _, rule := range perms[0].Rules {
		for _, res := range rule.Resources {
			if res != "tokenreviews" && res != "subjectaccessreviews" {
				t.Errorf("clusterPermissions grant %s %v: only token and access reviews need the cluster scope", res, rule.Verbs)
			}
		}
	}
}

// checkPermissions: the manager's rules (config/rbac/role.yaml, a
// ClusterRole in config/default) and leader election's are namespaced
// permissions, which OLM grants in the OperatorGroup's target namespaces.
func checkPermissions(t *testing.T, f *fixture) {
	leaderElection, roleNames := boundRules(t, f.rendered, "RoleBinding", "Role", f.sa, f.ns)
	if len(roleNames) == 0 {
		t.Fatalf("no Role bound to %s (leader election)", f.sa)
	}
	perms := f.csv.Spec.InstallStrategy.StrategySpec.Permissions
	if len(perms) != 1 || perms[0].ServiceAccountName != f.sa {
		t.Fatalf("permissions %+v, want one for %s", perms, f.sa)
	}
	// The manager's rules are config/rbac/role.yaml's (controller-gen's
	// output), whatever they are today, in one block, then the Roles'.
	var role rbacv1.ClusterRole
	readYAML(t, filepath.Join(configDir, "rbac", "role.yaml"), &role)
	if len(role.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	want := append(slices.Clone(role.Rules), leaderElection...)
	if !equality.Semantic.DeepEqual(perms[0].Rules, want) {
		t.Errorf("permissions rules differ from those of config/rbac/role.yaml and the Roles %v\ngot:  %+v\nwant: %+v", roleNames, perms[0].Rules, want)
	}
}

// checkNoClusterWideSecrets: whatever the install mode, the Secrets the
// operator may read are those of the namespaces OLM scopes it to.
func checkNoClusterWideSecrets(t *testing.T, f *fixture) {
	for _, perm := range f.csv.Spec.InstallStrategy.StrategySpec.ClusterPermissions {
		for _, rule := range perm.Rules {
			for _, res := range rule.Resources {
				if res == "secrets" || res == "*" {
					t.Errorf("clusterPermissions grant %q %v to %s", res, rule.Verbs, perm.ServiceAccountName)
				}
			}
		}
	}
	granted := false
	for _, perm := range f.csv.Spec.InstallStrategy.StrategySpec.Permissions {
		for _, rule := range perm.Rules {
			granted = granted || slices.Contains(rule.Resources, "secrets")
		}
	}
	if !granted {
		t.Error("no namespaced permission on Secrets: the operator could not check the Secrets a Memcached names")
	}
}

func checkCRD(t *testing.T, f *fixture) {
	var file apiextensionsv1.CustomResourceDefinition
	readYAML(t, filepath.Join(configDir, "crd", "bases", "cache.example.com_memcacheds.yaml"), &file)
	if len(f.bundle.V1CRDs) != 1 {
		t.Fatalf("the bundle has %d v1 CRDs, want 1", len(f.bundle.V1CRDs))
	}
	crd := f.bundle.V1CRDs[0]
	if crd.Name != file.Name || !equality.Semantic.DeepEqual(crd.Spec, file.Spec) {
		t.Errorf("the bundle's CRD %s differs from config/crd/bases/cache.example.com_memcacheds.yaml", crd.Name)
	}
	rend := fromUnstructured[apiextensionsv1.CustomResourceDefinition](t, f.rendered.find(t, "CustomResourceDefinition", file.Name))
	if !equality.Semantic.DeepEqual(crd, rend) {
		t.Errorf("the bundle's CRD differs from the rendered one")
	}

	owned := f.csv.Spec.CustomResourceDefinitions.Owned
	served := slices.DeleteFunc(slices.Clone(file.Spec.Versions), func(v apiextensionsv1.CustomResourceDefinitionVersion) bool { return !v.Served })
	if len(owned) != len(served) {
		t.Fatalf("%d owned CRD entries for %d served versions", len(owned), len(served))
	}
	for i, o := range owned {
		v := served[i]
		if o.Name != file.Name || o.Version != v.Name || o.Kind != file.Spec.Names.Kind {
			t.Errorf("owned %s/%s %s, want %s/%s %s", o.Name, o.Version, o.Kind, file.Name, v.Name, file.Spec.Names.Kind)
		}
		if o.Description != v.Schema.OpenAPIV3Schema.Description || o.Description == "" {
			t.Errorf("owned description %q, want the schema's %q", o.Description, v.Schema.OpenAPIV3Schema.Description)
		}
		if o.DisplayName == "" {
			t.Error("owned CRD has no displayName")
		}
		checkDescriptors(t, o, v.Schema.OpenAPIV3Schema)
		var kinds []string
		for _, r := range o.Resources {
			kinds = append(kinds, r.Kind)
		}
		for _, k := range []string{"Deployment", "StatefulSet", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"} {
			if !slices.Contains(kinds, k) {
				t.Errorf("owned resources %v lack %s", kinds, k)
			}
		}
	}
}

func checkAlmExamples(t *testing.T, f *fixture) {
	var examples []map[string]any
	if err := json.Unmarshal([]byte(f.csv.Annotations["alm-examples"]), &examples); err != nil {
		t.Fatalf("alm-examples is not a JSON list: %v", err)
	}
	samples, err := kustomizeBuild(f.kustomize, filepath.Join(configDir, "samples"))
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) != len(samples) || len(examples) == 0 {
		t.Fatalf("%d examples for %d samples", len(examples), len(samples))
	}
	for i := range samples {
		if !equality.Semantic.DeepEqual(jsonRoundTrip(t, samples[i].Object), examples[i]) {
			t.Errorf("example %d differs from the sample %s", i, samples[i].GetName())
		}
	}
}

func checkExtraManifests(t *testing.T, f *fixture) {
	files := readTree(t, filepath.Join(f.out, "manifests"))
	for _, obj := range []*unstructured.Unstructured{
		f.rendered.find(t, "Service", "memcached-operator-controller-manager-metrics-service"),
		f.rendered.find(t, "ClusterRole", "memcached-operator-metrics-reader"),
	} {
		name := obj.GetName() + "_" + strings.ReplaceAll(obj.GetAPIVersion(), "/", "_") + "_" + strings.ToLower(obj.GetKind()) + ".yaml"
		data, ok := files[name]
		if !ok {
			t.Errorf("no %s in bundle/manifests", name)
			continue
		}
		var got map[string]any
		if err := yaml.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		want := obj.DeepCopy()
		want.SetNamespace("")
		if !equality.Semantic.DeepEqual(got, jsonRoundTrip(t, want.Object)) {
			t.Errorf("%s differs from the rendered %s", name, obj.GetName())
		}
	}
	for name := range files {
		if strings.Contains(name, "_serviceaccount") || strings.Contains(name, "binding") || strings.Contains(name, "_namespace") {
			t.Errorf("%s should not be in the bundle: OLM creates it from the CSV", name)
		}
		if strings.Contains(name, "manager-role") || strings.Contains(name, "leader-election-role") || strings.Contains(name, "metrics-auth-role") {
			t.Errorf("%s is in the CSV's permissions and should not be in the bundle too", name)
		}
	}
}

func checkAnnotationsAndDockerfile(t *testing.T, f *fixture) {
	var ann manifestsAnnotations
	readYAML(t, filepath.Join(f.out, "metadata", "annotations.yaml"), &ann)
	want := map[string]string{
		"operators.operatorframework.io.bundle.mediatype.v1":       "registry+v1",
		"operators.operatorframework.io.bundle.manifests.v1":       "manifests/",
		"operators.operatorframework.io.bundle.metadata.v1":        "metadata/",
		"operators.operatorframework.io.bundle.package.v1":         "memcached-operator",
		"operators.operatorframework.io.bundle.channels.v1":        "alpha",
		"operators.operatorframework.io.bundle.channel.default.v1": "alpha",
	}
	if !reflect.DeepEqual(ann.Annotations, want) {
		t.Errorf("annotations.yaml: %v, want %v", ann.Annotations, want)
	}
	df, err := os.ReadFile(filepath.Join(f.dirA, "bundle.Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	var copies []string
	for line := range strings.SplitSeq(string(df), "\n") {
		if l, ok := strings.CutPrefix(line, "LABEL "); ok {
			k, v, _ := strings.Cut(l, "=")
			labels[k] = v
		}
		if strings.HasPrefix(line, "COPY ") {
			copies = append(copies, line)
		}
	}
	if !reflect.DeepEqual(labels, want) {
		t.Errorf("bundle.Dockerfile labels %v, want %v", labels, want)
	}
	if wantCopies := []string{"COPY bundle/manifests /manifests/", "COPY bundle/metadata /metadata/"}; !reflect.DeepEqual(copies, wantCopies) {
		t.Errorf("bundle.Dockerfile copies %q, want %q", copies, wantCopies)
	}
}

func checkValidation(t *testing.T, f *fixture) {
	results, err := validateBundle(f.out)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	nErrors, nWarnings := printResults(&buf, results)
	t.Logf("validation: %d error(s), %d warning(s)\n%s", nErrors, nWarnings, buf.String())
	if nErrors > 0 {
		t.Errorf("the bundle has %d validation error(s)", nErrors)
	}
}

// TestValidateFlag runs the command line as the Makefile would.
func TestValidateFlag(t *testing.T) {
	kustomize := kustomizeBin(t)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"--config-dir", configDir, "--kustomize", kustomize, "--image", testImage,
		"--out", filepath.Join(dir, "bundle"), "--created-at", "2026-01-02T03:04:05Z", "--validate"}
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "validation: 0 error(s)") {
		t.Errorf("no validation summary in %q", stdout.String())
	}
	csv := readCSV(t, filepath.Join(dir, "bundle"))
	if got := csv.Annotations["createdAt"]; got != "2026-01-02T03:04:05Z" {
		t.Errorf("createdAt %q", got)
	}
	if err := run([]string{"--out", filepath.Join(dir, "bundle"), "--generate=false", "--validate"}, &stdout, &stderr); err != nil {
		t.Errorf("validating alone: %v", err)
	}
	if err := run([]string{"--config-dir", configDir, "--kustomize", kustomize, "--out", filepath.Join(dir, "x")}, &stdout, &stderr); err == nil {
		t.Error("no error without --image")
	}
	if err := run([]string{"--kustomize", filepath.Join(dir, "missing"), "--image", testImage, "--out", filepath.Join(dir, "y")}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "make kustomize") {
		t.Errorf("a missing kustomize gives %v", err)
	}
}

// TestBaseDescriptorsExist fails when base.clusterserviceversion.yaml names a
// schema path the CRD lost: the generator refuses it.
func TestBaseDescriptorsExist(t *testing.T) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	readYAML(t, filepath.Join(configDir, "crd", "bases", "cache.example.com_memcacheds.yaml"), crd)
	base := []operatorsv1alpha1.CRDDescription{{
		Kind:            crd.Spec.Names.Kind,
		SpecDescriptors: []operatorsv1alpha1.SpecDescriptor{{Path: "noSuchField"}},
	}}
	if _, err := ownedCRD(crd, base); err == nil || !strings.Contains(err.Error(), "spec.noSuchField") {
		t.Errorf("a descriptor of a missing field gives %v", err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readCSV(t *testing.T, dir string) *operatorsv1alpha1.ClusterServiceVersion {
	t.Helper()
	b, err := manifests.GetBundleFromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b.CSV
}

type manifestsAnnotations struct {
	Annotations map[string]string `json:"annotations"`
}

func jsonRoundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkDescriptors checks that the main fields have descriptors, with the
// x-descriptors the console uses, and descriptions from the schema.
func checkDescriptors(t *testing.T, o operatorsv1alpha1.CRDDescription, schema *apiextensionsv1.JSONSchemaProps) {
	t.Helper()
	spec := map[string]operatorsv1alpha1.SpecDescriptor{}
	for _, d := range o.SpecDescriptors {
		spec[d.Path] = d
	}
	status := map[string]operatorsv1alpha1.StatusDescriptor{}
	for _, d := range o.StatusDescriptors {
		status[d.Path] = d
	}
	size, ok := spec["size"]
	if !ok || !slices.Contains(size.XDescriptors, "urn:alm:descriptor:com.tectonic.ui:podCount") {
		t.Errorf("size descriptor %+v lacks podCount", size)
	}
	if size.Description != schema.Properties["spec"].Properties["size"].Description {
		t.Errorf("size description %q is not the schema's", size.Description)
	}
	for _, p := range []string{"nodes", "serverList", "conditions"} {
		d, ok := status[p]
		if !ok {
			t.Errorf("no status descriptor for %s", p)
			continue
		}
		if d.Description == "" || d.Description != schema.Properties["status"].Properties[p].Description {
			t.Errorf("status %s description %q is not the schema's", p, d.Description)
		}
	}
	if !slices.Contains(status["conditions"].XDescriptors, "urn:alm:descriptor:io.kubernetes.conditions") {
		t.Errorf("conditions descriptor lacks io.kubernetes.conditions")
	}
}

// TestScopeRules: a rule granted cluster-wide stays so only when it names a
// cluster-scoped resource ("*", a built-in one or a cluster-scoped CRD's) or
// non-resource URLs; a rule naming both kinds is split.
func TestScopeRules(t *testing.T) {
	rule := func(group string, verbs []string, resources ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
	}
	get := []string{"get"}
	clusterCRD := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "widgets.example.com"},
		"spec": map[string]any{"group": "example.com", "scope": "Cluster",
			"names": map[string]any{"plural": "widgets", "kind": "Widget"}},
	}}
	metrics := rbacv1.PolicyRule{NonResourceURLs: []string{"/metrics"}, Verbs: get}
	leases := rule("coordination.k8s.io", get, "leases")
	cluster, namespaced, err := scopeRules([]rbacv1.PolicyRule{
		rule("", get, "secrets", "namespaces"),
		rule("authentication.k8s.io", []string{"create"}, "tokenreviews"),
		rule("cache.example.com", get, "memcacheds", "memcacheds/status"),
		rule("example.com", get, "widgets", "widgets/status"),
		rule("apps", get, "*"),
		metrics,
	}, []rbacv1.PolicyRule{leases}, []*unstructured.Unstructured{clusterCRD})
	if err != nil {
		t.Fatal(err)
	}
	wantCluster := []rbacv1.PolicyRule{
		rule("", get, "namespaces"),
		rule("authentication.k8s.io", []string{"create"}, "tokenreviews"),
		rule("example.com", get, "widgets", "widgets/status"),
		rule("apps", get, "*"),
		metrics,
	}
	wantNamespaced := []rbacv1.PolicyRule{
		rule("", get, "secrets"),
		rule("cache.example.com", get, "memcacheds", "memcacheds/status"),
		leases,
	}
	if !equality.Semantic.DeepEqual(cluster, wantCluster) {
		t.Errorf("cluster-wide rules\ngot:  %+v\nwant: %+v", cluster, wantCluster)
	}
	if !equality.Semantic.DeepEqual(namespaced, wantNamespaced) {
		t.Errorf("namespaced rules\ngot:  %+v\nwant: %+v", namespaced, wantNamespaced)
	}
}

// TestUpgradeEdge: --replaces and --skip-range give the CSV its upgrade edge,
// and the bundle stays valid; a replaced version not earlier than the
// bundle's, or a malformed one, is refused.
func TestUpgradeEdge(t *testing.T) {
	kustomize := kustomizeBin(t)
	dir := t.TempDir()
	base := []string{"--config-dir", configDir, "--kustomize", kustomize, "--image", testImage, "--version", "0.2.0"}
	var stdout, stderr bytes.Buffer
	args := append(slices.Clone(base), "--out", filepath.Join(dir, "bundle"), "--replaces", "0.1.0", "--skip-range", "<0.2.0", "--validate")
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
	}
	csv := readCSV(t, filepath.Join(dir, "bundle"))
	if csv.Spec.Replaces != "memcached-operator.v0.1.0" {
		t.Errorf("replaces %q, want memcached-operator.v0.1.0", csv.Spec.Replaces)
	}
	if got := csv.Annotations["olm.skipRange"]; got != "<0.2.0" {
		t.Errorf("olm.skipRange %q, want <0.2.0", got)
	}

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"a CSV name", []string{"--replaces", "memcached-operator.v0.1.5"}, ""},
		{"the same version", []string{"--replaces", "0.2.0"}, "not earlier"},
		{"a later version", []string{"--replaces", "memcached-operator.v0.3.0"}, "not earlier"},
		{"another package's CSV", []string{"--replaces", "other-operator.v0.1.0"}, "neither a semantic version"},
		{"a malformed skip range", []string{"--skip-range", "before 0.2.0"}, "--skip-range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "bundle")
			err := run(append(append(slices.Clone(base), "--out", out), tc.args...), &stdout, &stderr)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := readCSV(t, out).Spec.Replaces; got != "memcached-operator.v0.1.5" {
					t.Errorf("replaces %q", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}
