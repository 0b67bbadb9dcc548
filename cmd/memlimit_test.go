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

import "testing"

func TestGoMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    int64
		wantErr bool
	}{
		{name: "no limit known", env: map[string]string{}, want: 0},
		{name: "90% of the container's limit", env: map[string]string{"MEMORY_LIMIT": "134217728"}, want: 120795948},
		{name: "GOMEMLIMIT set by the user wins", env: map[string]string{"MEMORY_LIMIT": "134217728", "GOMEMLIMIT": "100MiB"}, want: 0},
		{name: "not a number", env: map[string]string{"MEMORY_LIMIT": "128Mi"}, wantErr: true},
		{name: "zero", env: map[string]string{"MEMORY_LIMIT": "0"}, wantErr: true},
		{name: "negative", env: map[string]string{"MEMORY_LIMIT": "-1"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := goMemoryLimit(func(key string) string { return tc.env[key] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want an error: %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("limit %d, want %d", got, tc.want)
			}
		})
	}
}
