package resources

import (
	"math"
	"testing"

	"example.com/memcached-operator/internal/memcached"
)

// The applied digest of every object is the one json.Marshal gives: a
// different one would make the operator apply every object again after an
// upgrade.
func TestContentHashIsTheDigestOfTheJSONForm(t *testing.T) {
	for _, tc := range goldenCases {
		mc := storedMemcached("example-memcached")
		if tc.spec != nil {
			tc.spec(&mc.Spec)
		}
		if err := memcached.CheckExtraArgs(&mc.Spec); err != nil {
			t.Fatalf("%s: the spec is one the operator refuses: %v", tc.name, err)
		}
		in := Inputs{Servers: Servers{List: serverList(mc), StatefulSetReplicas: mc.Spec.Size}}
		if tc.in != nil {
			tc.in(&in)
		}
		for _, obj := range Build(mc, in).Objects {
			if got, want := contentHash(obj.Object), hashOf(obj.Object); got != want {
				t.Errorf("%s: %s: contentHash = %s, json.Marshal's digest %s", tc.name, obj.Ref(), got, want)
			}
		}
	}
	odd := map[string]any{
		"<&>":     "a<b>&c",
		"quote":   `"\` + "\n\t\x01\u2028é\xff",
		"numbers": []any{int64(-1), int64(math.MaxInt64), 1.5, 1e21, 1e-7, float64(3)},
		"empty":   map[string]any{},
		"nils":    []any{nil, map[string]any(nil), []any(nil), true, false},
		"":        []any{},
		"Z":       "upper before lower",
	}
	if got, want := contentHash(odd), hashOf(odd); got != want {
		t.Errorf("contentHash = %s, json.Marshal's digest %s", got, want)
	}
}

func FuzzContentHash(f *testing.F) {
	f.Add("key", "value", int64(1), 0.5, true)
	f.Add("<", "\u2028\xff\"", int64(-7), 1e300, false)
	f.Fuzz(func(t *testing.T, key, value string, i int64, x float64, b bool) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return // not JSON
		}
		content := map[string]any{key: value, value: map[string]any{key: []any{i, x, b, nil, value}}, "n": i}
		if got, want := contentHash(content), hashOf(content); got != want {
			t.Errorf("contentHash(%v) = %s, json.Marshal's digest %s", content, got, want)
		}
	})
}

// BenchmarkAppliedHash compares the digest of a Deployment's content by
// contentHash with the one by json.Marshal.
func BenchmarkAppliedHash(b *testing.B) {
	mc := storedMemcached("example-memcached")
	in := Inputs{Servers: Servers{List: serverList(mc), StatefulSetReplicas: mc.Spec.Size}}
	content := Build(mc, in).Objects[0].Object
	b.Run("contentHash", func(b *testing.B) {
		for b.Loop() {
			contentHash(content)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			hashOf(content)
		}
	})
}
