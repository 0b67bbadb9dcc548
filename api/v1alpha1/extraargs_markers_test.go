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

package v1alpha1

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"
)

// TestSpecCarriesTheGeneratedMarkers checks that MemcachedSpec, in
// memcached_types.go, carries the validation markers that celgen generates
// from memcached's option tables into specMarkers, and no stale one: a
// marker on MemcachedSpec cannot be generated, so it is copied by hand.
func TestSpecCarriesTheGeneratedMarkers(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "memcached_types.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc *ast.CommentGroup
	ast.Inspect(file, func(n ast.Node) bool {
		if decl, ok := n.(*ast.GenDecl); ok && decl.Tok == token.TYPE {
			if spec := decl.Specs[0].(*ast.TypeSpec); spec.Name.Name == "MemcachedSpec" {
				doc = decl.Doc
			}
		}
		return doc == nil
	})
	if doc == nil {
		t.Fatal("memcached_types.go declares no MemcachedSpec with a doc comment")
	}
	var markers []string
	for _, c := range doc.List {
		if m, ok := strings.CutPrefix(c.Text, "// "); ok && strings.HasPrefix(m, "+kubebuilder:validation:XValidation:") {
			markers = append(markers, m)
		}
	}
	for _, want := range specMarkers {
		if !slices.Contains(markers, want) {
			t.Errorf("MemcachedSpec lacks the generated marker, or has another version of it; copy it from zz_generated.extraargs.go:\n// %s", want)
		}
	}
	for _, m := range markers {
		if (strings.Contains(m, "self.extraArgs") || strings.Contains(m, "self.resources.limits")) && !slices.Contains(specMarkers, m) {
			t.Errorf("MemcachedSpec has a marker that celgen no longer generates; remove it:\n// %s", m)
		}
	}
}
