package controller

import (
	"strings"
	"testing"

	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

func TestARuleAnotherWriterTookOverIsNoLongerTheOperators(t *testing.T) {
	desired := map[string]any{"spec": map[string]any{"groups": []any{
		map[string]any{"name": "memcached", "rules": []any{map[string]any{"alert": "MemcachedDown", "expr": "memcached_up == 0"}}},
	}}}
	for _, tc := range []struct {
		name, owned string
		want        bool
	}{
		{name: "every field of the group", want: true,
			owned: `{"f:spec":{"f:groups":{"k:{\"name\":\"memcached\"}":{".":{},"f:name":{},"f:rules":{}}}}}`},
		{name: "its rules edited by someone else", want: false,
			owned: `{"f:spec":{"f:groups":{"k:{\"name\":\"memcached\"}":{".":{},"f:name":{}}}}}`},
		{name: "a group the operator does not set", want: true,
			owned: `{"f:spec":{"f:groups":{"k:{\"name\":\"memcached\"}":{".":{},"f:name":{},"f:rules":{}},"k:{\"name\":\"other\"}":{".":{},"f:name":{}}}}}`},
		{name: "a list taken whole", want: true,
			owned: `{"f:spec":{"f:groups":{}}}`},
		{name: "an element held whole, as an owner reference", want: true,
			owned: `{"f:spec":{"f:groups":{"k:{\"name\":\"memcached\"}":{}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have := &fieldpath.Set{}
			if err := have.FromJSON(strings.NewReader(tc.owned)); err != nil {
				t.Fatal(err)
			}
			if got := ownsEveryFieldOfTheKeyedElements(desired, have); got != tc.want {
				t.Errorf("ownsEveryFieldOfTheKeyedElements = %v, want %v", got, tc.want)
			}
		})
	}
}
