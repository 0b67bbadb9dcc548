package memcached

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	"k8s.io/apimachinery/pkg/util/version"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"sigs.k8s.io/yaml"
)

// crdSchemas returns the structural schemas of spec and spec.extraArgs of
// the CRD in config/crd/bases.
func crdSchemas(t *testing.T) (spec, extraArgs *schema.Structural) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "cache.example.com_memcacheds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		t.Fatal(err)
	}
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(
		crd.Spec.Versions[0].Schema.OpenAPIV3Schema, internal, nil); err != nil {
		t.Fatal(err)
	}
	root, err := schema.NewStructural(internal)
	if err != nil {
		t.Fatal(err)
	}
	specSchema := root.Properties["spec"]
	extraArgsSchema := specSchema.Properties["extraArgs"]
	return &specSchema, &extraArgsSchema
}

// TestRulesNeedKubernetes133 compiles the rules as kube-apiserver compiles
// the rules of a CRD it is given: with the CEL features of the Kubernetes
// version before its own. Those of 1.32, two-variable comprehensions, are
// needed: kube-apiserver 1.33 is the first that admits the CRD.
func TestRulesNeedKubernetes133(t *testing.T) {
	spec, extraArgs := crdSchemas(t)
	for _, tt := range []struct {
		minor   uint
		compile bool
	}{{31, false}, {32, true}} {
		envSet := environment.MustBaseEnvSet(version.MajorMinor(1, tt.minor))
		var failed int
		for _, s := range []*schema.Structural{spec, extraArgs} {
			results, err := cel.Compile(s, model.SchemaDeclType(s, false), celconfig.PerCallLimit, envSet, cel.NewExpressionsEnvLoader())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				if r.Error != nil || r.MessageExpressionError != nil {
					failed++
				}
			}
		}
		switch {
		case tt.compile && failed > 0:
			t.Errorf("%d rules do not compile with the CEL features of Kubernetes 1.%d (kube-apiserver 1.%d)", failed, tt.minor, tt.minor+1)
		case !tt.compile && failed == 0:
			t.Errorf("every rule compiles with the CEL features of Kubernetes 1.%d: kube-apiserver 1.%d would admit the CRD", tt.minor, tt.minor+1)
		}
	}
}

// TestRulesFitTheCostBudget compiles the rules of the CRD in
// config/crd/bases as the API server does when it admits the CRD, and checks
// that each rule and message expression is within the API server's
// estimated cost limits, and all of them together too. It logs each cost.
func TestRulesFitTheCostBudget(t *testing.T) {
	spec, extraArgs := crdSchemas(t)
	// As a new CRD: the features of the compatibility version (n-1).
	envSet := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())

	var total uint64
	for _, s := range []struct {
		path   string
		schema *schema.Structural
	}{{"spec", spec}, {"spec.extraArgs", extraArgs}} {
		results, err := cel.Compile(s.schema, model.SchemaDeclType(s.schema, false), celconfig.PerCallLimit, envSet, cel.NewExpressionsEnvLoader())
		if err != nil {
			t.Fatalf("%s: %v", s.path, err)
		}
		for i, r := range results {
			if r.Error != nil {
				t.Errorf("%s rule %d: %v", s.path, i, r.Error)
				continue
			}
			if r.MessageExpressionError != nil {
				t.Errorf("%s rule %d message: %v", s.path, i, r.MessageExpressionError)
				continue
			}
			t.Logf("%s rule %d: estimated cost %d, message %d (%d characters)", s.path, i, r.MaxCost, r.MessageExpressionMaxCost,
				len(s.schema.XValidations[i].Rule)+len(s.schema.XValidations[i].MessageExpression))
			if r.MaxCost > crdvalidation.StaticEstimatedCostLimit {
				t.Errorf("%s rule %d: estimated cost %d, above the limit %d", s.path, i, r.MaxCost, crdvalidation.StaticEstimatedCostLimit)
			}
			if r.MessageExpressionMaxCost > crdvalidation.StaticEstimatedCostLimit {
				t.Errorf("%s rule %d: estimated message cost %d, above the limit %d", s.path, i, r.MessageExpressionMaxCost,
					crdvalidation.StaticEstimatedCostLimit)
			}
			total += r.MaxCost
		}
	}
	t.Logf("Estimated cost of the rules of spec and spec.extraArgs: %d of the CRD's %d", total, crdvalidation.StaticEstimatedCRDCostLimit)
	if total > crdvalidation.StaticEstimatedCRDCostLimit {
		t.Errorf("the rules' estimated cost %d is above the CRD's limit %d", total, crdvalidation.StaticEstimatedCRDCostLimit)
	}
}
