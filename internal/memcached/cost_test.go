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
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"sigs.k8s.io/yaml"
)

// TestRulesFitTheCostBudget compiles the rules of the CRD in
// config/crd/bases as the API server does when it admits the CRD, and checks
// that each rule and message expression is within the API server's
// estimated cost limits, and all of them together too. It logs each cost.
func TestRulesFitTheCostBudget(t *testing.T) {
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
	spec := root.Properties["spec"]
	extraArgs := spec.Properties["extraArgs"]
	// As a new CRD: the features of the compatibility version (n-1).
	envSet := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())

	var total uint64
	for _, s := range []struct {
		path   string
		schema *schema.Structural
	}{{"spec", &spec}, {"spec.extraArgs", &extraArgs}} {
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
