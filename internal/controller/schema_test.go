package controller

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// foundValues are values that the API server once accepted and Go could
// not decode, or decoded only slowly, by the kind of leaf they were found
// in. Each is submitted again by every run, beside the generated ones.
var foundValues = map[string][]any{
	"integer": {int64(1) << 31, int64(math.MaxInt64), -(int64(1) << 31) - 1},
	"int-or-string": {int64(1) << 31, int64(math.MaxInt64), "1e-1000000000", "1e1000000000", "9e99999999999",
		strings.Repeat("9", 200), "0." + strings.Repeat("0", 200) + "1", "100000000000%", "-1%",
		// A decimal exponent matches the schema's pattern for quantities,
		// which resource.ParseQuantity refuses.
		"1e1.5", "5E.5", "4e.2", ".3E-.3", "+.5e-0.1"},
}

// stringsPerRegex is how many strings each regular expression of a leaf
// gives.
const stringsPerRegex = 24

// valueBatch is how many accepted Memcacheds exist at once while a
// Memcached of another namespace has to converge.
const valueBatch = 100

// TestEveryValueTheSchemaAcceptsDecodes generates values for every leaf of
// the Memcached spec from what its schema says (strings from its patterns
// and the regular expressions of its CEL rules, numbers at and beyond their
// bounds and the bounds of their Go types, int-or-strings as both) and
// submits each to the API server. Every value accepted must decode into the
// Go type at once and be reconciled, and while up to valueBatch of them
// exist, a Memcached of another namespace must still converge: a Memcached
// that the API server accepts and Go cannot read must never stop the
// others. SCHEMA_VALUES_SEED replays a run.
func TestEveryValueTheSchemaAcceptsDecodes(t *testing.T) {
	g := NewWithT(t)
	ns, other := newNamespace(t), newNamespace(t)
	rng := seededRand(t, "SCHEMA_VALUES_SEED")

	spec := memcachedSpecSchema(t)
	leaves := specLeaves(spec)
	canary := createMemcached(t, other, "canary", 1)
	converged(t, canary)

	var batch []*unstructured.Unstructured
	// closeBatch waits for the operator to reconcile every Memcached of the
	// batch and the canary after a change, then deletes the batch.
	closeBatch := func() {
		for _, obj := range batch {
			g.Eventually(func(g Gomega) {
				mc := &cachev1alpha1.Memcached{}
				g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(obj), mc)).To(Succeed())
				c := meta.FindStatusCondition(mc.Status.Conditions, cachev1alpha1.ConditionDegraded)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.ObservedGeneration).To(Equal(mc.Generation))
			}).Should(Succeed(), "%s is not reconciled", describe(obj))
		}
		patchSpec(t, canary, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 3 - s.Size })
		converged(t, canary)
		g.Expect(k8sClient.DeleteAllOf(t.Context(), &cachev1alpha1.Memcached{}, client.InNamespace(ns))).To(Succeed())
		batch = nil
	}

	submitted, accepted := 0, 0
	var neverAccepted []string
	for _, leaf := range leaves {
		acceptedHere := 0
		for i, value := range leaf.values(rng) {
			submitted++
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": cachev1alpha1.GroupVersion.String(), "kind": "Memcached",
				"metadata": map[string]any{"namespace": ns, "generateName": "v-"},
				"spec":     build(spec, leaf.path[1:], value, rng),
			}}
			if i%2 == 1 && leaf.path[1] != "workload" {
				obj.Object["spec"].(map[string]any)["workload"] = string(cachev1alpha1.WorkloadStatefulSet)
			}
			if err := k8sClient.Create(t.Context(), obj); err != nil {
				g.Expect(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)).To(BeTrue(),
					"%s = %#v is refused for another reason than its content: %v", leaf, value, err)
				continue
			}
			accepted++
			acceptedHere++
			expectDecodes(t, obj, fmt.Sprintf("%s = %#v", leaf, value))
			batch = append(batch, obj)
			if len(batch) == valueBatch {
				closeBatch()
			}
		}
		if acceptedHere == 0 {
			neverAccepted = append(neverAccepted, leaf.String())
		}
	}
	closeBatch()
	t.Logf("Submitted %d values to %d leaves of the spec; %d were accepted, and each decoded and was reconciled",
		submitted, len(leaves), accepted)
	t.Logf("Leaves none of whose values was accepted: %v", neverAccepted)
	g.Expect(len(leaves)).To(BeNumerically(">", 100), "the walk found too few leaves in the spec")
	g.Expect(len(neverAccepted)).To(BeNumerically("<", len(leaves)/10),
		"too many leaves had no value accepted, so they were not tested: %v", neverAccepted)
}

// expectDecodes fails t unless obj, as the API server returned it, decodes
// into a Memcached within 5 seconds.
func expectDecodes(t *testing.T, obj *unstructured.Unstructured, what string) {
	t.Helper()
	raw, err := json.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	decoded := make(chan error, 1)
	go func() { decoded <- json.Unmarshal(raw, &cachev1alpha1.Memcached{}) }()
	select {
	case err := <-decoded:
		if err != nil {
			t.Errorf("%s is accepted but cannot be read: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s is accepted and reading it does not end", what)
	}
}

// memcachedSpecSchema returns the schema of the Memcached spec, as the CRD
// the API server runs has it.
func memcachedSpecSchema(t *testing.T) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "cache.example.com_memcacheds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	return crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
}

// leaf is a field of the spec that holds a value, not an object or list.
type leaf struct {
	path   []string // from "spec"; "[]" is an element of a list, "{}" a value of a map
	schema apiextensionsv1.JSONSchemaProps
	// regexes are the patterns a string must match: the schema's, and those
	// of the CEL rules of the leaf and of the list or map that holds it.
	regexes []string
}

func (l leaf) String() string { return strings.ReplaceAll(strings.Join(l.path, "."), ".[]", "[]") }

// kind is the leaf's type: integer, number, string, boolean or int-or-string.
func (l leaf) kind() string {
	if l.schema.XIntOrString {
		return "int-or-string"
	}
	return l.schema.Type
}

// celMatches finds the regular expressions of CEL rules' matches().
var celMatches = regexp.MustCompile(`matches\('((?:[^'\\]|\\.)*)'\)`)

func regexesOf(rules apiextensionsv1.ValidationRules) []string {
	var found []string
	for _, rule := range rules {
		for _, m := range celMatches.FindAllStringSubmatch(rule.Rule, -1) {
			found = append(found, strings.ReplaceAll(m[1], `\\`, `\`))
		}
	}
	return found
}

// specLeaves returns every leaf of the spec schema s, in a stable order.
func specLeaves(s apiextensionsv1.JSONSchemaProps) []leaf {
	var leaves []leaf
	var walk func(s apiextensionsv1.JSONSchemaProps, path, inherited []string)
	walk = func(s apiextensionsv1.JSONSchemaProps, path, inherited []string) {
		own := regexesOf(s.XValidations)
		switch {
		case s.XIntOrString || (s.Type != "object" && s.Type != "array"):
			regexes := slices.Concat(inherited, own)
			if s.Pattern != "" {
				regexes = append(regexes, s.Pattern)
			}
			leaves = append(leaves, leaf{path: path, schema: s, regexes: regexes})
		case s.Type == "array" && s.Items != nil && s.Items.Schema != nil:
			walk(*s.Items.Schema, append(slices.Clone(path), "[]"), own)
		case s.Type == "object" && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil:
			walk(*s.AdditionalProperties.Schema, append(slices.Clone(path), "{}"), own)
		case s.Type == "object":
			for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
				walk(s.Properties[name], append(slices.Clone(path), name), nil)
			}
		}
	}
	walk(s, []string{"spec"}, nil)
	return leaves
}

// values returns the values to submit for l: made from its schema, and
// those found before for its kind.
func (l leaf) values(rng *rand.Rand) []any {
	var values []any
	kind := l.kind()
	if kind == "integer" || kind == "number" || kind == "int-or-string" {
		values = append(values, numbersAround(l.schema)...)
	}
	if kind == "number" {
		values = append(values, 0.5, 1.5, -0.5, 1e-300)
	}
	if kind == "string" || kind == "int-or-string" {
		values = append(values, l.strings(rng)...)
	}
	if kind == "boolean" {
		values = append(values, true, false)
	}
	return append(values, foundValues[kind]...)
}

// numbersAround returns the bounds of s and of the Go integer types, the
// numbers just beyond them, and numbers a JSON decoder reads as floats.
func numbersAround(s apiextensionsv1.JSONSchemaProps) []any {
	values := []any{int64(0), int64(1), int64(-1), int64(math.MaxInt32), int64(math.MinInt32),
		int64(math.MaxInt32) + 1, int64(math.MinInt32) - 1, int64(math.MaxInt64), int64(math.MinInt64),
		float64(1 << 53), 1e19, -1e19, 1e300, 1.0, 2.5}
	if s.Minimum != nil {
		values = append(values, *s.Minimum, *s.Minimum-1)
	}
	if s.Maximum != nil {
		values = append(values, *s.Maximum, *s.Maximum+1)
	}
	return values
}

// strings returns strings of l's enum, strings its regular expressions
// match, short and long, and, without either, plain ones.
func (l leaf) strings(rng *rand.Rand) []any {
	var values []any
	for _, e := range l.schema.Enum {
		var v any
		_ = json.Unmarshal(e.Raw, &v)
		values = append(values, v)
	}
	for _, re := range l.regexes {
		for i := range stringsPerRegex {
			maxRepeat := []int{0, 1, 2, 3, 5, 8, 13, 40}[i%8]
			if s, err := (regexGenerator{rng: rng, maxRepeat: maxRepeat}).generate(re); err == nil {
				values = append(values, s)
			}
		}
	}
	if len(values) == 0 {
		long := 300
		if l.schema.MaxLength != nil {
			long = int(*l.schema.MaxLength)
		}
		values = append(values, "x", "", " ", "é", "a b", strings.Repeat("a", long))
	}
	return values
}

// build returns an object of schema s holding value at path, and values for
// the fields s requires. "[]" is the only element of a list, "{}" the value
// of the key "memory" of a map.
func build(s apiextensionsv1.JSONSchemaProps, path []string, value any, rng *rand.Rand) any {
	if len(path) == 0 {
		return value
	}
	switch path[0] {
	case "[]":
		return []any{build(*s.Items.Schema, path[1:], value, rng)}
	case "{}":
		return map[string]any{"memory": build(*s.AdditionalProperties.Schema, path[1:], value, rng)}
	}
	obj := map[string]any{}
	for _, name := range s.Required {
		if name != path[0] {
			obj[name] = placeholder(s.Properties[name], rng)
		}
	}
	obj[path[0]] = build(s.Properties[path[0]], path[1:], value, rng)
	return obj
}

// placeholder returns a value of schema s that its type, enum and pattern
// allow.
func placeholder(s apiextensionsv1.JSONSchemaProps, rng *rand.Rand) any {
	switch s.Type {
	case "string":
		if len(s.Enum) > 0 {
			var v any
			_ = json.Unmarshal(s.Enum[0].Raw, &v)
			return v
		}
		if s.Pattern != "" {
			if v, err := (regexGenerator{rng: rng, maxRepeat: 3}).generate(s.Pattern); err == nil {
				return v
			}
		}
		return "x"
	case "integer":
		if s.Minimum != nil {
			return int64(math.Max(*s.Minimum, 1))
		}
		return int64(1)
	case "boolean":
		return true
	case "array":
		return []any{}
	default:
		obj := map[string]any{}
		for _, name := range s.Required {
			obj[name] = placeholder(s.Properties[name], rng)
		}
		return obj
	}
}
