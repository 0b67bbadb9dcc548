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

import (
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"example.com/memcached-operator/internal/resources"
)

// The install passes the images of the Memcacheds that name none, so that a
// platform team sees and mirrors them: they are the manager's own defaults.
func TestTheInstallPassesTheDefaultImages(t *testing.T) {
	data, err := os.ReadFile("../config/manager/manager.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var manager *appsv1.Deployment
	for doc := range strings.SplitSeq(string(data), "\n---\n") {
		d := &appsv1.Deployment{}
		if yaml.Unmarshal([]byte(doc), d) == nil && d.Kind == "Deployment" {
			manager = d
		}
	}
	if manager == nil {
		t.Fatal("config/manager/manager.yaml holds no Deployment")
	}
	args := manager.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"--memcached-image=" + resources.DefaultImage, "--exporter-image=" + resources.DefaultExporterImage} {
		if !slices.Contains(args, want) {
			t.Errorf("the manager's arguments %q lack %s", args, want)
		}
	}
}
