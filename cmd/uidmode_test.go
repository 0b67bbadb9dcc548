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
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

func TestUIDModeFromFlagOrEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name       string
		flag       string
		flagGiven  bool
		env        string
		want, from string
		wantErr    string
	}{
		{name: "neither: fixed", flag: uidFixed, want: uidFixed, from: "default"},
		{name: "the environment", flag: uidFixed, env: "platform", want: uidPlatform, from: memcachedUIDEnv},
		{name: "auto from the environment", flag: uidFixed, env: "auto", want: uidAuto, from: memcachedUIDEnv},
		{name: "the flag", flag: uidPlatform, flagGiven: true, want: uidPlatform, from: "flag"},
		{name: "the flag given wins over the environment", flag: uidFixed, flagGiven: true, env: "platform", want: uidFixed, from: "flag"},
		{name: "an invalid environment", flag: uidFixed, env: "11211", wantErr: `MEMCACHED_UID must be fixed, platform or auto, not "11211"`},
		{name: "an invalid flag", flag: "Platform", flagGiven: true, env: "platform", wantErr: `--memcached-uid must be fixed, platform or auto, not "Platform"`},
		{name: "an invalid environment under a valid flag", flag: uidAuto, flagGiven: true, env: "bogus", want: uidAuto, from: "flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(key string) string {
				if key == memcachedUIDEnv {
					return tc.env
				}
				return ""
			}
			mode, from, err := uidMode(tc.flag, tc.flagGiven, getenv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mode != tc.want || from != tc.from {
				t.Errorf("mode %q from %q, want %q from %q", mode, from, tc.want, tc.from)
			}
		})
	}
}

func TestSettingsASubscriptionGivesComeFromFlagOrEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name      string
		flag      string
		flagGiven bool
		env       string
		want      string
	}{
		{name: "neither: the self-signed certificate", want: ""},
		{name: "the environment, as a Subscription sets it", env: "/etc/metrics-cert", want: "/etc/metrics-cert"},
		{name: "the flag", flag: "/certs", flagGiven: true, want: "/certs"},
		{name: "the flag given wins over the environment", flag: "/certs", flagGiven: true, env: "/etc/metrics-cert", want: "/certs"},
		{name: "the flag given empty wins too", flagGiven: true, env: "/etc/metrics-cert", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The same rule for every setting a Subscription's config.env
			// can give.
			for _, env := range []string{metricsCertPathEnv, memcachedImageEnv, exporterImageEnv} {
				getenv := func(key string) string {
					if key == env {
						return tc.env
					}
					return ""
				}
				if got := flagOrEnv(tc.flag, tc.flagGiven, env, getenv); got != tc.want {
					t.Errorf("%s: %q, want %q", env, got, tc.want)
				}
			}
		})
	}
}

// failingMapper fails every lookup, as an unreachable API server would.
type failingMapper struct{ meta.RESTMapper }

func (failingMapper) RESTMapping(schema.GroupKind, ...string) (*meta.RESTMapping, error) {
	return nil, errors.New("connection refused")
}

func TestPlatformAssignsUIDOnOpenShiftOnlyInAutoMode(t *testing.T) {
	kubernetes := meta.NewDefaultRESTMapper(nil)
	kubernetes.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	openShift := meta.NewDefaultRESTMapper(nil)
	openShift.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	openShift.Add(openShiftSCC, meta.RESTScopeRoot)

	for _, tc := range []struct {
		name   string
		mode   string
		mapper meta.RESTMapper
		want   bool
	}{
		{"fixed on Kubernetes", uidFixed, kubernetes, false},
		{"fixed on OpenShift", uidFixed, openShift, false},
		{"platform on Kubernetes", uidPlatform, kubernetes, true},
		{"platform on OpenShift", uidPlatform, openShift, true},
		{"auto on Kubernetes", uidAuto, kubernetes, false},
		{"auto on OpenShift", uidAuto, openShift, true},
		{"fixed needs no lookup", uidFixed, failingMapper{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := platformAssignsUID(tc.mode, tc.mapper)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("platformAssignsUID(%q) = %v, want %v", tc.mode, got, tc.want)
			}
		})
	}

	if _, err := platformAssignsUID(uidAuto, failingMapper{}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("auto with a failing discovery gives %v, want the lookup's error", err)
	}
	if _, err := platformAssignsUID("bogus", kubernetes); err == nil {
		t.Error("an unknown mode gives no error")
	}
}

// TestAutoModeThroughDiscovery runs the decision through the REST mapper the
// manager builds, against an API server's discovery documents with and
// without OpenShift's security.openshift.io group.
func TestAutoModeThroughDiscovery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		openShift bool
	}{{"Kubernetes", false}, {"OpenShift", true}} {
		t.Run(tc.name, func(t *testing.T) {
			server := httptest.NewServer(discoveryHandler(t, tc.openShift))
			defer server.Close()
			mapper, err := newRESTMapper(&rest.Config{Host: server.URL})
			if err != nil {
				t.Fatal(err)
			}
			got, err := platformAssignsUID(uidAuto, mapper)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.openShift {
				t.Errorf("auto on %s: platformAssignsUID %v, want %v", tc.name, got, tc.openShift)
			}
		})
	}
}

// discoveryHandler serves the discovery documents of a cluster with the
// apps group, and OpenShift's security group when openShift is set.
func discoveryHandler(t *testing.T, openShift bool) http.Handler {
	groups := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	resources := map[string]*metav1.APIResourceList{
		"/api/v1": {GroupVersion: "v1", APIResources: []metav1.APIResource{{Name: "pods", Namespaced: true, Kind: "Pod", Verbs: []string{"get"}}}},
	}
	addGroup := func(group, version string, res metav1.APIResource) {
		gv := metav1.GroupVersionForDiscovery{GroupVersion: group + "/" + version, Version: version}
		groups.Groups = append(groups.Groups, metav1.APIGroup{Name: group, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv})
		resources["/apis/"+gv.GroupVersion] = &metav1.APIResourceList{GroupVersion: gv.GroupVersion, APIResources: []metav1.APIResource{res}}
	}
	addGroup("apps", "v1", metav1.APIResource{Name: "deployments", Namespaced: true, Kind: "Deployment", Verbs: []string{"get"}})
	if openShift {
		addGroup(openShiftSCC.Group, openShiftSCC.Version,
			metav1.APIResource{Name: "securitycontextconstraints", Kind: openShiftSCC.Kind, Verbs: []string{"get"}})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body any
		switch r.URL.Path {
		case "/api":
			body = &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"}}
		case "/apis":
			body = groups
		default:
			list, ok := resources[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			body = list
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(body); err != nil {
			t.Error(err)
		}
	})
}

// config/openshift runs the memcached pods under OpenShift's restricted-v2:
// it adds MEMCACHED_UID=platform to config/default's manager.
func TestTheOpenShiftOverlaySetsThePlatformUID(t *testing.T) {
	data, err := os.ReadFile("../config/openshift/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
		Patches   []struct {
			Target struct{ Kind, Name string } `json:"target"`
			Patch  string                      `json:"patch"`
		} `json:"patches"`
	}
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Resources, []string{"../default"}) {
		t.Errorf("resources %q, want config/default only", k.Resources)
	}
	var env []corev1.EnvVar
	for _, p := range k.Patches {
		var ops []struct {
			Op    string        `json:"op"`
			Path  string        `json:"path"`
			Value corev1.EnvVar `json:"value"`
		}
		if err := yaml.Unmarshal([]byte(p.Patch), &ops); err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if p.Target.Kind == "Deployment" && op.Op == "add" && op.Path == "/spec/template/spec/containers/0/env/-" {
				env = append(env, op.Value)
			}
		}
	}
	if len(env) != 1 || env[0].Name != memcachedUIDEnv {
		t.Fatalf("the overlay adds the variables %+v, want %s only", env, memcachedUIDEnv)
	}
	mode, _, err := uidMode(uidFixed, false, func(string) string { return env[0].Value })
	if err != nil || mode != uidPlatform {
		t.Errorf("%s=%s gives the mode %q (%v), want %s", memcachedUIDEnv, env[0].Value, mode, err, uidPlatform)
	}
}
