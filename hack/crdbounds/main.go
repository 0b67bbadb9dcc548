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

// Command crdbounds gives every integer of format int32 in the CRDs it is
// given the bounds of an int32, where the schema has none of its own:
//
//	go run ./hack/crdbounds config/crd/bases/*.yaml
//
// Kubernetes 1.33 admits a value beyond int32 in a field of format int32
// (1.37 refuses it), and the operator could then not read the Memcached. The
// fields come from Kubernetes' own types (spread constraints, affinity
// weights, probes), whose Go types controller-gen cannot give bounds to.
// make manifests runs it after controller-gen.
package main

import (
	"bytes"
	"fmt"
	"math"
	"os"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	for _, path := range os.Args[1:] {
		if err := bound(path); err != nil {
			fmt.Fprintf(os.Stderr, "crdbounds: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

// bound rewrites the CRD at path with the bounds of int32 on its int32
// integers, in the form controller-gen writes it.
func bound(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(data, []byte("---\n")), crd); err != nil {
		return err
	}
	for i := range crd.Spec.Versions {
		if s := crd.Spec.Versions[i].Schema; s != nil && s.OpenAPIV3Schema != nil {
			boundInt32(s.OpenAPIV3Schema)
		}
	}
	out, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	// controller-gen leaves out the status and creation time it has no
	// value for.
	out = bytes.Replace(out, []byte("  creationTimestamp: null\n"), nil, 1)
	if i := bytes.LastIndex(out, []byte("\nstatus:\n")); i >= 0 {
		out = out[:i+1]
	}
	return os.WriteFile(path, append([]byte("---\n"), out...), 0o644)
}

// boundInt32 sets the bounds of int32 on every integer of format int32 in
// s that has no bound of its own.
func boundInt32(s *apiextensionsv1.JSONSchemaProps) {
	if s == nil {
		return
	}
	if s.Type == "integer" && s.Format == "int32" {
		if s.Minimum == nil {
			s.Minimum = ptr(float64(math.MinInt32))
		}
		if s.Maximum == nil {
			s.Maximum = ptr(float64(math.MaxInt32))
		}
	}
	for k, p := range s.Properties {
		boundInt32(&p)
		s.Properties[k] = p
	}
	if s.Items != nil {
		boundInt32(s.Items.Schema)
		for i := range s.Items.JSONSchemas {
			boundInt32(&s.Items.JSONSchemas[i])
		}
	}
	if s.AdditionalProperties != nil {
		boundInt32(s.AdditionalProperties.Schema)
	}
	for _, list := range [][]apiextensionsv1.JSONSchemaProps{s.AllOf, s.AnyOf, s.OneOf} {
		for i := range list {
			boundInt32(&list[i])
		}
	}
}

func ptr[T any](v T) *T { return &v }
