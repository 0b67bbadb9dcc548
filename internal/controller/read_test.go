package controller

import (
	"testing"
)

func TestFirstUndecodableNamesTheField(t *testing.T) {
	for name, tc := range map[string]struct {
		content map[string]any
		want    string
	}{
		"a decimal exponent in a limit": {
			content: map[string]any{"spec": map[string]any{"size": int64(2),
				"resources": map[string]any{"limits": map[string]any{"cpu": "1", "memory": "1e1.5"}}}},
			want: "spec.resources.limits.memory",
		},
		"a number beyond int32 in a list": {
			content: map[string]any{"spec": map[string]any{"topologySpreadConstraints": []any{
				map[string]any{"maxSkew": int64(1), "topologyKey": "zone"},
				map[string]any{"maxSkew": int64(1) << 40, "topologyKey": "zone"},
			}}},
			want: "spec.topologySpreadConstraints[1].maxSkew",
		},
		"a string where a number goes": {
			content: map[string]any{"spec": map[string]any{"size": "three"}},
			want:    "spec.size",
		},
		"nothing wrong": {
			content: map[string]any{"spec": map[string]any{"size": int64(3)}},
			want:    "",
		},
	} {
		t.Run(name, func(t *testing.T) {
			if got := firstUndecodable(tc.content); got != tc.want {
				t.Errorf("firstUndecodable = %q, want %q", got, tc.want)
			}
		})
	}
}
