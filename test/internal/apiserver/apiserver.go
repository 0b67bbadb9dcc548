// Package apiserver starts a kube-apiserver and etcd of KUBEBUILDER_ASSETS
// with the Memcached CRD, for the tests that need an API server but no
// cluster.
package apiserver

import (
	"os"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Start starts the API server with the CRDs of crdDir and stops it when t
// ends. The configuration it returns is of an administrator.
func Start(t testing.TB, crdDir string) (*envtest.Environment, *rest.Config) {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run these tests with 'make test', which builds kube-apiserver and etcd and sets it")
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crdDir}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("failed to start the API server of KUBEBUILDER_ASSETS=%s: %v", os.Getenv("KUBEBUILDER_ASSETS"), err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("failed to stop the API server: %v", err)
		}
	})
	return env, cfg
}
