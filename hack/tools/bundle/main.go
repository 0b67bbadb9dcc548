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

// Command bundle writes the operator's OLM bundle (registry+v1) from config/,
// as `operator-sdk generate bundle` would, without operator-sdk:
//
//	go run -C hack/tools/bundle . --image example.com/memcached-operator:v0.1.0 --version 0.1.0 --validate
//
// It renders config/default and config/samples with kustomize and writes
// <out>/manifests (the ClusterServiceVersion, the CRDs and the objects OLM
// cannot express in a CSV, such as the metrics Service and the roles not bound
// to the operator), <out>/metadata/annotations.yaml and bundle.Dockerfile. The
// hand-written part of the CSV is base.clusterserviceversion.yaml; the icon is
// icon.svg. The output depends only on its inputs: the same config/ and flags
// give the same bytes.
//
// With --validate it then loads the bundle with operator-framework/api's
// manifests loader and runs its validators (the default bundle validators, the
// OperatorHub, capabilities, categories, good-practices, deprecated-API and
// object validators), prints every error and warning, and fails on an error.
// Relative paths are relative to the working directory; the defaults assume
// hack/tools/bundle (go run -C hack/tools/bundle).
package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/blang/semver/v4"
	"github.com/operator-framework/api/pkg/lib/version"
	"github.com/operator-framework/api/pkg/manifests"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"github.com/operator-framework/api/pkg/validation"
	validationerrors "github.com/operator-framework/api/pkg/validation/errors"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

//go:embed base.clusterserviceversion.yaml
var baseCSV []byte

//go:embed icon.svg
var iconSVG []byte

// watchNamespaceEnv is the operator's environment variable naming the
// namespaces it watches (comma-separated; every namespace when empty). In the
// bundle it is set from the annotation OLM puts on the operator's pods: the
// OperatorGroup's target namespaces, empty with AllNamespaces.
const watchNamespaceEnv = "WATCH_NAMESPACE"

// memcachedUIDEnv is the operator's environment variable choosing the
// memcached pods' user. The bundle sets it to "auto": the platform's uid on
// OpenShift, whose restricted-v2 refuses the fixed one, and the fixed uid
// elsewhere. A Subscription's spec.config.env overrides it.
const (
	memcachedUIDEnv   = "MEMCACHED_UID"
	memcachedUIDValue = "auto"
)

// clusterScoped are the built-in cluster-scoped resources a rule may name,
// as group/resource. A rule naming one, or "*", or non-resource URLs, is
// granted cluster-wide (clusterPermissions); the other rules are namespaced
// (permissions), which OLM grants in the OperatorGroup's target namespaces
// only. The bundle's own CRDs add their cluster-scoped resources.
var clusterScoped = []string{
	"/namespaces",
	"/nodes",
	"/persistentvolumes",
	"/componentstatuses",
	"admissionregistration.k8s.io/mutatingadmissionpolicies",
	"admissionregistration.k8s.io/mutatingadmissionpolicybindings",
	"admissionregistration.k8s.io/mutatingwebhookconfigurations",
	"admissionregistration.k8s.io/validatingadmissionpolicies",
	"admissionregistration.k8s.io/validatingadmissionpolicybindings",
	"admissionregistration.k8s.io/validatingwebhookconfigurations",
	"apiextensions.k8s.io/customresourcedefinitions",
	"apiregistration.k8s.io/apiservices",
	"authentication.k8s.io/selfsubjectreviews",
	"authentication.k8s.io/tokenreviews",
	"authorization.k8s.io/selfsubjectaccessreviews",
	"authorization.k8s.io/selfsubjectrulesreviews",
	"authorization.k8s.io/subjectaccessreviews",
	"certificates.k8s.io/certificatesigningrequests",
	"certificates.k8s.io/clustertrustbundles",
	"flowcontrol.apiserver.k8s.io/flowschemas",
	"flowcontrol.apiserver.k8s.io/prioritylevelconfigurations",
	"networking.k8s.io/ingressclasses",
	"networking.k8s.io/ipaddresses",
	"networking.k8s.io/servicecidrs",
	"node.k8s.io/runtimeclasses",
	"rbac.authorization.k8s.io/clusterrolebindings",
	"rbac.authorization.k8s.io/clusterroles",
	"resource.k8s.io/deviceclasses",
	"resource.k8s.io/resourceslices",
	"scheduling.k8s.io/priorityclasses",
	"storage.k8s.io/csidrivers",
	"storage.k8s.io/csinodes",
	"storage.k8s.io/storageclasses",
	"storage.k8s.io/volumeattachments",
	"storage.k8s.io/volumeattributesclasses",
}

// relatedImages are the operand images the operator runs by default, read
// from the manager's flags that set them (name, flag). Listed in
// spec.relatedImages, they let a disconnected cluster mirror them. In the
// bundle each is passed through the manager's environment variable (env)
// instead of its flag, following OLM's RELATED_IMAGE_ convention, so that a
// Subscription's spec.config.env can point it at a mirror, which a flag would
// not allow.
var relatedImages = []struct{ name, flag, env string }{
	{"memcached", "--memcached-image", "RELATED_IMAGE_MEMCACHED"},
	{"memcached-exporter", "--exporter-image", "RELATED_IMAGE_EXPORTER"},
}

type options struct {
	configDir      string
	kustomize      string
	image          string
	version        string
	out            string
	dockerfile     string
	packageName    string
	channels       string
	defaultChannel string
	createdAt      string
	replaces       string
	skipRange      string
	generate       bool
	validate       bool
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("bundle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configDir, "config-dir", "../../../config", "the kubebuilder config directory (default and samples are rendered)")
	fs.StringVar(&o.kustomize, "kustomize", "../../../bin/kustomize", "the kustomize binary")
	fs.StringVar(&o.image, "image", "", "the operator image for the CSV's Deployment (required to generate)")
	fs.StringVar(&o.version, "version", "0.1.0", "the bundle's semantic version (CSV name <package>.v<version>)")
	fs.StringVar(&o.out, "out", "../../../bundle", "the bundle directory to write (manifests/ and metadata/ are replaced)")
	fs.StringVar(&o.dockerfile, "dockerfile", "", "where to write bundle.Dockerfile (default: bundle.Dockerfile beside --out, as operator-sdk does)")
	fs.StringVar(&o.packageName, "package", "memcached-operator", "the OLM package name")
	fs.StringVar(&o.channels, "channels", "alpha", "the channels of the bundle, comma-separated")
	fs.StringVar(&o.defaultChannel, "default-channel", "alpha", "the package's default channel")
	fs.StringVar(&o.createdAt, "created-at", "", "the CSV's createdAt annotation (e.g. 2026-01-02T15:04:05Z); omitted when empty, to keep the output reproducible")
	fs.StringVar(&o.replaces, "replaces", "", "the version (e.g. 0.1.0) or CSV name (<package>.v0.1.0) this bundle upgrades from: spec.replaces, the upgrade edge of the channel; none when empty, for the first version")
	fs.StringVar(&o.skipRange, "skip-range", "", "the versions this bundle upgrades directly from (e.g. '<0.2.0'): the olm.skipRange annotation; none when empty")
	fs.BoolVar(&o.generate, "generate", true, "write the bundle; --generate=false --validate only validates --out")
	fs.BoolVar(&o.validate, "validate", false, "validate the bundle in --out with operator-framework/api's validators, failing on an error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !o.generate && !o.validate {
		return errors.New("nothing to do: --generate=false without --validate")
	}
	if o.generate {
		if err := generate(o); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote the bundle %s.v%s to %s\n", o.packageName, o.version, o.out)
	}
	if o.validate {
		results, err := validateBundle(o.out)
		if err != nil {
			return err
		}
		nErrors, nWarnings := printResults(stdout, results)
		fmt.Fprintf(stdout, "validation: %d error(s), %d warning(s)\n", nErrors, nWarnings)
		if nErrors > 0 {
			return fmt.Errorf("the bundle in %s has %d validation error(s)", o.out, nErrors)
		}
	}
	return nil
}

// generate renders config/ and writes the bundle.
func generate(o options) error {
	if o.image == "" {
		return errors.New("--image is required")
	}
	ver, err := semver.Parse(o.version)
	if err != nil {
		return fmt.Errorf("--version %q: %w", o.version, err)
	}
	if o.createdAt != "" {
		if _, err := time.Parse(time.RFC3339, o.createdAt); err != nil {
			return fmt.Errorf("--created-at %q is not an RFC 3339 time: %w", o.createdAt, err)
		}
	}
	if _, err := replacesName(o.packageName, o.replaces, ver); err != nil {
		return err
	}
	if o.skipRange != "" {
		if _, err := semver.ParseRange(o.skipRange); err != nil {
			return fmt.Errorf("--skip-range %q is not a semantic version range: %w", o.skipRange, err)
		}
	}
	channels := splitList(o.channels)
	if len(channels) == 0 {
		return errors.New("--channels is empty")
	}
	if o.defaultChannel != "" && !slices.Contains(channels, o.defaultChannel) {
		return fmt.Errorf("--default-channel %q is not one of --channels %q", o.defaultChannel, o.channels)
	}
	if _, err := exec.LookPath(o.kustomize); err != nil {
		return fmt.Errorf("kustomize binary %s: %w (run `make kustomize` in the repository root)", o.kustomize, err)
	}

	objs, err := kustomizeBuild(o.kustomize, filepath.Join(o.configDir, "default"))
	if err != nil {
		return err
	}
	samples, err := kustomizeBuild(o.kustomize, filepath.Join(o.configDir, "samples"))
	if err != nil {
		return err
	}

	b, err := buildBundle(o, ver, objs, samples)
	if err != nil {
		return err
	}
	return b.write(o)
}

// bundle is what is written: the file contents under manifests/, and the
// annotations of metadata/annotations.yaml and bundle.Dockerfile.
type bundle struct {
	manifests   map[string][]byte // file name -> content
	annotations [][2]string
}

// buildBundle turns the rendered objects into the bundle's files.
func buildBundle(o options, ver semver.Version, objs, samples []*unstructured.Unstructured) (*bundle, error) {
	csv := &operatorsv1alpha1.ClusterServiceVersion{}
	if err := yaml.UnmarshalStrict(baseCSV, csv); err != nil {
		return nil, fmt.Errorf("base.clusterserviceversion.yaml: %w", err)
	}
	r, err := classify(objs)
	if err != nil {
		return nil, err
	}

	deploy, err := operatorDeployment(r.deployment, o.image)
	if err != nil {
		return nil, err
	}
	saName := deploy.Spec.Template.Spec.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	operatorNS := deploy.Namespace
	clusterRules, nsRules, extras, err := permissions(r, saName, operatorNS)
	if err != nil {
		return nil, err
	}
	clusterRules, nsRules, err = scopeRules(clusterRules, nsRules, r.crds)
	if err != nil {
		return nil, err
	}
	strategy := operatorsv1alpha1.StrategyDetailsDeployment{
		DeploymentSpecs: []operatorsv1alpha1.StrategyDeploymentSpec{{
			Name:  deploy.Name,
			Spec:  deploy.Spec,
			Label: deploy.Labels,
		}},
	}
	if len(clusterRules) > 0 {
		strategy.ClusterPermissions = []operatorsv1alpha1.StrategyDeploymentPermissions{{ServiceAccountName: saName, Rules: clusterRules}}
	}
	if len(nsRules) > 0 {
		strategy.Permissions = []operatorsv1alpha1.StrategyDeploymentPermissions{{ServiceAccountName: saName, Rules: nsRules}}
	}
	csv.Spec.InstallStrategy = operatorsv1alpha1.NamedInstallStrategy{
		StrategyName: operatorsv1alpha1.InstallStrategyNameDeployment,
		StrategySpec: strategy,
	}

	// Name, version, icon and the annotations that come from the inputs.
	csv.Name = o.packageName + ".v" + ver.String()
	csv.Namespace = "placeholder" // as operator-sdk writes it; OLM ignores it
	csv.Spec.Version = version.OperatorVersion{Version: ver}
	csv.Spec.Icon = []operatorsv1alpha1.Icon{{Data: base64.StdEncoding.EncodeToString(iconSVG), MediaType: "image/svg+xml"}}
	if csv.Annotations == nil {
		csv.Annotations = map[string]string{}
	}
	examples, err := almExamples(samples)
	if err != nil {
		return nil, err
	}
	csv.Annotations["alm-examples"] = examples
	csv.Annotations["containerImage"] = o.image
	if o.createdAt != "" {
		csv.Annotations["createdAt"] = o.createdAt
	}
	if csv.Spec.Replaces, err = replacesName(o.packageName, o.replaces, ver); err != nil {
		return nil, err
	}
	if o.skipRange != "" {
		csv.Annotations["olm.skipRange"] = o.skipRange
	}
	if operatorNS != "" {
		csv.Annotations["operatorframework.io/suggested-namespace"] = operatorNS
	}

	owned, err := ownedCRDs(r.crds, csv.Spec.CustomResourceDefinitions.Owned)
	if err != nil {
		return nil, err
	}
	csv.Spec.CustomResourceDefinitions.Owned = owned
	operands, err := operandImages(deploy)
	if err != nil {
		return nil, err
	}
	csv.Spec.RelatedImages = append([]operatorsv1alpha1.RelatedImage{{Name: o.packageName, Image: o.image}}, operands...)

	b := &bundle{manifests: map[string][]byte{}}
	csvYAML, err := marshalCSV(csv)
	if err != nil {
		return nil, err
	}
	if err := b.add(o.packageName+".clusterserviceversion.yaml", csvYAML); err != nil {
		return nil, err
	}
	if err := b.addCRDs(r.crds); err != nil {
		return nil, err
	}
	// The operator's ServiceAccount is created by OLM from the CSV.
	extras = slices.DeleteFunc(extras, func(obj *unstructured.Unstructured) bool {
		return obj.GetKind() == "ServiceAccount" && obj.GetAPIVersion() == "v1" && obj.GetName() == saName && obj.GetNamespace() == operatorNS
	})
	if err := b.addObjects(extras); err != nil {
		return nil, err
	}

	b.annotations = [][2]string{
		{"operators.operatorframework.io.bundle.mediatype.v1", "registry+v1"},
		{"operators.operatorframework.io.bundle.manifests.v1", "manifests/"},
		{"operators.operatorframework.io.bundle.metadata.v1", "metadata/"},
		{"operators.operatorframework.io.bundle.package.v1", o.packageName},
		{"operators.operatorframework.io.bundle.channels.v1", strings.Join(splitList(o.channels), ",")},
	}
	if o.defaultChannel != "" {
		b.annotations = append(b.annotations, [2]string{"operators.operatorframework.io.bundle.channel.default.v1", o.defaultChannel})
	}
	return b, nil
}

// rendered is config/default's objects by what the bundle makes of them.
type rendered struct {
	crds       []*unstructured.Unstructured
	deployment *unstructured.Unstructured
	roles      map[string]*unstructured.Unstructured // by roleKey
	bindings   []*unstructured.Unstructured
	others     []*unstructured.Unstructured // written as they are
}

func classify(objs []*unstructured.Unstructured) (*rendered, error) {
	r := &rendered{roles: map[string]*unstructured.Unstructured{}}
	var deployments []*unstructured.Unstructured
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		switch {
		case gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition":
			r.crds = append(r.crds, obj)
		case gvk.Group == "apps" && gvk.Kind == "Deployment":
			deployments = append(deployments, obj)
		case gvk.Group == rbacv1.GroupName && (gvk.Kind == "Role" || gvk.Kind == "ClusterRole"):
			r.roles[roleKey(gvk.Kind, obj.GetNamespace(), obj.GetName())] = obj
		case gvk.Group == rbacv1.GroupName && (gvk.Kind == "RoleBinding" || gvk.Kind == "ClusterRoleBinding"):
			r.bindings = append(r.bindings, obj)
		case gvk.Group == "" && gvk.Kind == "Namespace":
			// OLM installs into the namespace of the Subscription's OperatorGroup.
		default:
			r.others = append(r.others, obj)
		}
	}
	if len(deployments) != 1 {
		return nil, fmt.Errorf("config/default renders %d Deployments; want the operator's one", len(deployments))
	}
	if len(r.crds) == 0 {
		return nil, errors.New("config/default renders no CustomResourceDefinition")
	}
	r.deployment = deployments[0]
	slices.SortFunc(r.crds, func(a, b *unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
	return r, nil
}

// operatorDeployment is the rendered Deployment with the operator's image set,
// WATCH_NAMESPACE taken from OLM's annotation, MEMCACHED_UID set to auto and
// the default operand images moved from flags to their RELATED_IMAGE_
// variables.
func operatorDeployment(obj *unstructured.Unstructured, image string) (*appsv1.Deployment, error) {
	deploy := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, deploy); err != nil {
		return nil, fmt.Errorf("deployment %s: %w", obj.GetName(), err)
	}
	manager, err := managerContainer(&deploy.Spec.Template)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", deploy.Name, err)
	}
	manager.Image = image
	setEnv(manager, corev1.EnvVar{
		Name: watchNamespaceEnv,
		ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			FieldPath: "metadata.annotations['olm.targetNamespaces']",
		}},
	})
	setEnv(manager, corev1.EnvVar{Name: memcachedUIDEnv, Value: memcachedUIDValue})
	for _, ri := range relatedImages {
		image := ""
		manager.Args = slices.DeleteFunc(manager.Args, func(arg string) bool {
			value, ok := strings.CutPrefix(arg, ri.flag+"=")
			if ok {
				image = value
			}
			return ok
		})
		if image == "" {
			return nil, fmt.Errorf("deployment %s: related image %s: the manager is not given %s=<image>", deploy.Name, ri.name, ri.flag)
		}
		setEnv(manager, corev1.EnvVar{Name: ri.env, Value: image})
	}
	return deploy, nil
}

// permissions returns the rules of the roles bound to the operator's
// ServiceAccount: granted cluster-wide (ClusterRoleBindings) and in its
// namespace (RoleBindings), each in the order of the roles' kinds and names.
// The bindings go (OLM makes its own); the other roles and bindings are
// returned with the other objects, to be written as they are.
func permissions(r *rendered, saName, operatorNS string) (clusterRules, nsRules []rbacv1.PolicyRule, extras []*unstructured.Unstructured, err error) {
	type boundRole struct {
		key     string
		cluster bool // granted cluster-wide (a ClusterRoleBinding)
	}
	var bound []boundRole
	boundKeys := map[string]bool{}
	extras = slices.Clone(r.others)
	for _, binding := range r.bindings {
		var rb rbacv1.RoleBinding // a ClusterRoleBinding has the same fields
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(binding.Object, &rb); err != nil {
			return nil, nil, nil, fmt.Errorf("%s %s: %w", binding.GetKind(), binding.GetName(), err)
		}
		operators := 0
		for _, s := range rb.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == saName && (s.Namespace == "" || s.Namespace == operatorNS) {
				operators++
			}
		}
		if operators == 0 {
			extras = append(extras, binding)
			continue
		}
		if operators != len(rb.Subjects) {
			return nil, nil, nil, fmt.Errorf("%s %s binds the operator's ServiceAccount together with other subjects, which a CSV cannot express", binding.GetKind(), binding.GetName())
		}
		ns := binding.GetNamespace()
		if rb.RoleRef.Kind == "ClusterRole" {
			ns = ""
		}
		key := roleKey(rb.RoleRef.Kind, ns, rb.RoleRef.Name)
		if _, ok := r.roles[key]; !ok {
			return nil, nil, nil, fmt.Errorf("%s %s refers to %s %s, which config/default does not render", binding.GetKind(), binding.GetName(), rb.RoleRef.Kind, rb.RoleRef.Name)
		}
		bound = append(bound, boundRole{key: key, cluster: binding.GetKind() == "ClusterRoleBinding"})
		boundKeys[key] = true
	}
	// Deterministic whatever the order of the input.
	slices.SortStableFunc(bound, func(a, b boundRole) int { return strings.Compare(a.key, b.key) })
	for _, br := range bound {
		var role rbacv1.ClusterRole // a Role has the same rules field
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(r.roles[br.key].Object, &role); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", br.key, err)
		}
		if br.cluster {
			clusterRules = append(clusterRules, role.Rules...)
		} else {
			nsRules = append(nsRules, role.Rules...)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(r.roles)) {
		if !boundKeys[key] {
			extras = append(extras, r.roles[key])
		}
	}
	return clusterRules, nsRules, extras, nil
}

// scopeRules moves the namespaced rules of the roles granted cluster-wide
// into the namespaced rules, after those of the namespaced roles' own, so
// that OLM grants them in the OperatorGroup's target namespaces only (as
// ClusterRoles with AllNamespaces). Only the rules that need the cluster
// scope stay cluster-wide; a rule naming both kinds of resources is split.
func scopeRules(clusterRules, nsRules []rbacv1.PolicyRule, crds []*unstructured.Unstructured) (cluster, namespaced []rbacv1.PolicyRule, err error) {
	scoped := map[string]bool{}
	for _, gr := range clusterScoped {
		scoped[gr] = true
	}
	for _, obj := range crds {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, crd); err != nil {
			return nil, nil, fmt.Errorf("CRD %s: %w", obj.GetName(), err)
		}
		if crd.Spec.Scope == apiextensionsv1.ClusterScoped {
			scoped[crd.Spec.Group+"/"+crd.Spec.Names.Plural] = true
		}
	}
	isClusterScoped := func(group, resource string) bool {
		base, _, _ := strings.Cut(resource, "/") // a subresource is scoped as its resource
		return group == "*" || base == "*" || scoped[group+"/"+base]
	}
	var movedRules []rbacv1.PolicyRule
	for _, rule := range clusterRules {
		if len(rule.NonResourceURLs) > 0 {
			cluster = append(cluster, rule)
			continue
		}
		var clusterRes, nsRes []string
		for _, res := range rule.Resources {
			if slices.ContainsFunc(rule.APIGroups, func(g string) bool { return isClusterScoped(g, res) }) {
				clusterRes = append(clusterRes, res)
			} else {
				nsRes = append(nsRes, res)
			}
		}
		if len(clusterRes) > 0 {
			r := *rule.DeepCopy()
			r.Resources = clusterRes
			cluster = append(cluster, r)
		}
		if len(nsRes) > 0 {
			r := *rule.DeepCopy()
			r.Resources = nsRes
			movedRules = append(movedRules, r)
		}
	}
	return cluster, append(movedRules, nsRules...), nil
}

// replacesName is the CSV name of --replaces: a version is prefixed with
// <package>.v; either must be an earlier version than the bundle's.
func replacesName(packageName, replaces string, ver semver.Version) (string, error) {
	if replaces == "" {
		return "", nil
	}
	v, err := semver.Parse(strings.TrimPrefix(replaces, packageName+".v"))
	if err != nil {
		return "", fmt.Errorf("--replaces %q is neither a semantic version nor %s.v<version>: %w", replaces, packageName, err)
	}
	if !v.LT(ver) {
		return "", fmt.Errorf("--replaces %s is not earlier than --version %s", v, ver)
	}
	return packageName + ".v" + v.String(), nil
}

// ownedCRDs describes the CRDs for the CSV.
func ownedCRDs(crds []*unstructured.Unstructured, bases []operatorsv1alpha1.CRDDescription) ([]operatorsv1alpha1.CRDDescription, error) {
	kinds := map[string]bool{}
	var owned []operatorsv1alpha1.CRDDescription
	for _, obj := range crds {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, crd); err != nil {
			return nil, fmt.Errorf("CRD %s: %w", obj.GetName(), err)
		}
		kinds[crd.Spec.Names.Kind] = true
		descs, err := ownedCRD(crd, bases)
		if err != nil {
			return nil, err
		}
		owned = append(owned, descs...)
	}
	for _, base := range bases {
		if !kinds[base.Kind] {
			return nil, fmt.Errorf("base.clusterserviceversion.yaml describes the kind %s, which no rendered CRD defines", base.Kind)
		}
	}
	return owned, nil
}

// operandImages are the relatedImages read from the environment of the
// operator's Deployment (see operatorDeployment).
func operandImages(deploy *appsv1.Deployment) ([]operatorsv1alpha1.RelatedImage, error) {
	manager, err := managerContainer(&deploy.Spec.Template)
	if err != nil {
		return nil, err
	}
	var out []operatorsv1alpha1.RelatedImage
	for _, ri := range relatedImages {
		i := slices.IndexFunc(manager.Env, func(e corev1.EnvVar) bool { return e.Name == ri.env })
		if i < 0 || manager.Env[i].Value == "" {
			return nil, fmt.Errorf("related image %s: the manager has no %s", ri.name, ri.env)
		}
		out = append(out, operatorsv1alpha1.RelatedImage{Name: ri.name, Image: manager.Env[i].Value})
	}
	return out, nil
}

// addCRDs adds the CRDs as rendered, named <group>_<plural>.yaml.
func (b *bundle) addCRDs(crds []*unstructured.Unstructured) error {
	for _, obj := range crds {
		group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "plural")
		data, err := yaml.Marshal(obj.Object)
		if err != nil {
			return err
		}
		if err := b.add(group+"_"+plural+".yaml", data); err != nil {
			return err
		}
	}
	return nil
}

// addObjects adds objects without their namespace (OLM puts them in the
// operator's), named <name>_<group>_<version>_<kind>.yaml as operator-sdk does.
func (b *bundle) addObjects(objs []*unstructured.Unstructured) error {
	for _, obj := range objs {
		obj = obj.DeepCopy()
		obj.SetNamespace("")
		data, err := yaml.Marshal(obj.Object)
		if err != nil {
			return err
		}
		gv := strings.ReplaceAll(obj.GetAPIVersion(), "/", "_")
		if err := b.add(fmt.Sprintf("%s_%s_%s.yaml", obj.GetName(), gv, strings.ToLower(obj.GetKind())), data); err != nil {
			return err
		}
	}
	return nil
}

func (b *bundle) add(name string, data []byte) error {
	if _, ok := b.manifests[name]; ok {
		return fmt.Errorf("two manifests would be written to %s", name)
	}
	b.manifests[name] = data
	return nil
}

// write replaces <out>/manifests and <out>/metadata and writes bundle.Dockerfile.
func (b *bundle) write(o options) error {
	manifestsDir := filepath.Join(o.out, "manifests")
	metadataDir := filepath.Join(o.out, "metadata")
	for _, dir := range []string{manifestsDir, metadataDir} {
		if err := removeYAML(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	for name, data := range b.manifests {
		if err := os.WriteFile(filepath.Join(manifestsDir, name), data, 0o644); err != nil {
			return err
		}
	}

	var ann bytes.Buffer
	ann.WriteString("annotations:\n  # Core bundle annotations.\n")
	for _, kv := range b.annotations {
		v, err := yaml.Marshal(kv[1]) // quotes what YAML would misread
		if err != nil {
			return err
		}
		fmt.Fprintf(&ann, "  %s: %s", kv[0], v)
	}
	if err := os.WriteFile(filepath.Join(metadataDir, "annotations.yaml"), ann.Bytes(), 0o644); err != nil {
		return err
	}

	dockerfile := o.dockerfile
	if dockerfile == "" {
		dockerfile = filepath.Join(filepath.Dir(filepath.Clean(o.out)), "bundle.Dockerfile")
	}
	absDockerfile, err := filepath.Abs(dockerfile)
	if err != nil {
		return err
	}
	absOut, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(absDockerfile), absOut)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("--out %s is not under the directory of --dockerfile %s, its build context", o.out, dockerfile)
	}
	rel = filepath.ToSlash(rel)
	var df bytes.Buffer
	df.WriteString("FROM scratch\n\n# Core bundle labels.\n")
	for _, kv := range b.annotations {
		fmt.Fprintf(&df, "LABEL %s=%s\n", kv[0], kv[1])
	}
	df.WriteString("\n# Copy files to locations specified by labels.\n")
	fmt.Fprintf(&df, "COPY %s /manifests/\n", path.Join(rel, "manifests"))
	fmt.Fprintf(&df, "COPY %s /metadata/\n", path.Join(rel, "metadata"))
	return os.WriteFile(dockerfile, df.Bytes(), 0o644)
}

// removeYAML removes the YAML files a previous run left in dir, so that a
// manifest config/ no longer renders does not stay in the bundle.
func removeYAML(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// kustomizeBuild runs `kustomize build dir` and decodes the objects.
func kustomizeBuild(kustomize, dir string) ([]*unstructured.Unstructured, error) {
	cmd := exec.Command(kustomize, "build", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s build %s: %w: %s", kustomize, dir, err, strings.TrimSpace(stderr.String()))
	}
	return decodeObjects(out)
}

// decodeObjects decodes a multi-document YAML stream.
func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(j); err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
}

func roleKey(kind, namespace, name string) string {
	return kind + "/" + namespace + "/" + name
}

func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// managerContainer returns the operator's container: the one the
// kubectl.kubernetes.io/default-container annotation names, else "manager",
// else the only one.
func managerContainer(t *corev1.PodTemplateSpec) (*corev1.Container, error) {
	name := t.Annotations["kubectl.kubernetes.io/default-container"]
	if name == "" {
		name = "manager"
	}
	for i := range t.Spec.Containers {
		if t.Spec.Containers[i].Name == name {
			return &t.Spec.Containers[i], nil
		}
	}
	if len(t.Spec.Containers) == 1 {
		return &t.Spec.Containers[0], nil
	}
	return nil, fmt.Errorf("no container %q among %d", name, len(t.Spec.Containers))
}

// setEnv sets env on c, replacing a variable of the same name.
func setEnv(c *corev1.Container, env corev1.EnvVar) {
	for i := range c.Env {
		if c.Env[i].Name == env.Name {
			c.Env[i] = env
			return
		}
	}
	c.Env = append(c.Env, env)
}

// almExamples is the alm-examples annotation: the samples as a JSON list,
// indented as operator-sdk writes it.
func almExamples(samples []*unstructured.Unstructured) (string, error) {
	if len(samples) == 0 {
		return "", errors.New("config/samples renders no object")
	}
	list := make([]map[string]any, 0, len(samples))
	for _, s := range samples {
		list = append(list, s.Object)
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return "", err
	}
	return string(data), nil
}

// ownedCRD describes each served version of crd, from the base entry of its
// kind (display name, resources, descriptors) and its schema (descriptions).
func ownedCRD(crd *apiextensionsv1.CustomResourceDefinition, bases []operatorsv1alpha1.CRDDescription) ([]operatorsv1alpha1.CRDDescription, error) {
	var base *operatorsv1alpha1.CRDDescription
	for i := range bases {
		if bases[i].Kind == crd.Spec.Names.Kind && (bases[i].Name == "" || bases[i].Name == crd.Name) {
			base = &bases[i]
		}
	}
	var out []operatorsv1alpha1.CRDDescription
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		d := operatorsv1alpha1.CRDDescription{DisplayName: crd.Spec.Names.Kind}
		if base != nil {
			if base.Version != "" && base.Version != v.Name {
				continue
			}
			base.DeepCopyInto(&d)
		}
		d.Name = crd.Name
		d.Version = v.Name
		d.Kind = crd.Spec.Names.Kind
		var schema *apiextensionsv1.JSONSchemaProps
		if v.Schema != nil {
			schema = v.Schema.OpenAPIV3Schema
		}
		if d.Description == "" && schema != nil {
			d.Description = schema.Description
		}
		for i := range d.SpecDescriptors {
			p, err := schemaProperty(schema, "spec."+d.SpecDescriptors[i].Path)
			if err != nil {
				return nil, fmt.Errorf("%s %s specDescriptor: %w", crd.Name, v.Name, err)
			}
			if d.SpecDescriptors[i].Description == "" {
				d.SpecDescriptors[i].Description = p.Description
			}
		}
		for i := range d.StatusDescriptors {
			p, err := schemaProperty(schema, "status."+d.StatusDescriptors[i].Path)
			if err != nil {
				return nil, fmt.Errorf("%s %s statusDescriptor: %w", crd.Name, v.Name, err)
			}
			if d.StatusDescriptors[i].Description == "" {
				d.StatusDescriptors[i].Description = p.Description
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// schemaProperty returns the property at a dotted path of schema; array
// items are looked through.
func schemaProperty(schema *apiextensionsv1.JSONSchemaProps, dotted string) (*apiextensionsv1.JSONSchemaProps, error) {
	p := schema
	for seg := range strings.SplitSeq(dotted, ".") {
		if p == nil {
			return nil, fmt.Errorf("%s: no schema", dotted)
		}
		if p.Type == "array" && p.Items != nil && p.Items.Schema != nil {
			p = p.Items.Schema
		}
		next, ok := p.Properties[seg]
		if !ok {
			return nil, fmt.Errorf("the CRD schema has no %s", dotted)
		}
		p = &next
	}
	return p, nil
}

// marshalCSV writes csv as YAML without the fields a typed round trip adds
// and a bundle does not have: null creationTimestamps, the status and a
// disabled spec.cleanup.
func marshalCSV(csv *operatorsv1alpha1.ClusterServiceVersion) ([]byte, error) {
	csv.APIVersion = operatorsv1alpha1.SchemeGroupVersion.String()
	csv.Kind = operatorsv1alpha1.ClusterServiceVersionKind
	j, err := json.Marshal(csv)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	// spec.cleanup has no omitempty: drop it when it says what OLM defaults to.
	if spec, ok := m["spec"].(map[string]any); ok {
		if c, ok := spec["cleanup"].(map[string]any); ok && len(c) == 1 && c["enabled"] == false {
			delete(spec, "cleanup")
		}
	}
	return yaml.Marshal(dropNulls(m))
}

func dropNulls(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil {
				delete(t, k)
				continue
			}
			t[k] = dropNulls(e)
		}
	case []any:
		for i := range t {
			t[i] = dropNulls(t[i])
		}
	}
	return v
}

// validateBundle loads the bundle in dir as OLM's tooling does and runs the
// default bundle validators (CSV, CRDs, bundle) and the optional OperatorHub
// v2, standard capabilities and categories, good practices, deprecated APIs
// and object validators. The multiple-architectures validator is left out: it
// pulls the images' manifests from their registries.
func validateBundle(dir string) ([]validationerrors.ManifestResult, error) {
	b, err := manifests.GetBundleFromDir(dir)
	if err != nil {
		return nil, fmt.Errorf("loading the bundle in %s: %w", dir, err)
	}
	validators := validation.DefaultBundleValidators.WithValidators(
		validation.OperatorHubV2Validator,
		validation.StandardCapabilitiesValidator,
		validation.StandardCategoriesValidator,
		validation.GoodPracticesValidator,
		validation.AlphaDeprecatedAPIsValidator,
		validation.ObjectValidator,
	)
	return validators.Validate(b.ObjectsToValidate()...), nil
}

// printResults prints every error and warning and counts them.
func printResults(w io.Writer, results []validationerrors.ManifestResult) (nErrors, nWarnings int) {
	for _, r := range results {
		for _, e := range r.Errors {
			fmt.Fprintf(w, "ERROR   %s: %s\n", r.Name, e.Error())
			nErrors++
		}
		for _, e := range r.Warnings {
			fmt.Fprintf(w, "WARNING %s: %s\n", r.Name, e.Error())
			nWarnings++
		}
	}
	return nErrors, nWarnings
}
