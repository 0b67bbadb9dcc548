package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/localrun"
	"example.com/memcached-operator/test/internal/simcluster"
)

// TestReleaseUninstallKeepsTheCRDAndMemcacheds installs the release, the CRD
// from dist/crds.yaml and the operator from dist/install.yaml, on a simulated
// cluster of its own, creates a Memcached, and deletes what
// dist/install.yaml holds: the operator's namespace and cluster-wide RBAC go,
// the CRD and the Memcached stay. Only deleting dist/crds.yaml, on purpose,
// removes the CRD and with it every Memcached.
func TestReleaseUninstallKeepsTheCRDAndMemcacheds(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	crds, manifest := os.Getenv("CRDS_MANIFEST"), os.Getenv("INSTALL_MANIFEST")
	if crds == "" || manifest == "" {
		t.Fatal("CRDS_MANIFEST and INSTALL_MANIFEST must be set: run this test with 'make test-e2e', which runs make build-installer")
	}
	own, err := simcluster.Start(ctx, simcluster.Options{BinDir: filepath.Dir(kubectl), DataDir: filepath.Join(logDir, "uninstall", "cluster")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = own.Close() })
	for _, file := range []string{crds, manifest} {
		out, err := runKubectlAs(own.Kubeconfig, "apply", "--server-side", "-f", file)
		g.Expect(err).NotTo(HaveOccurred(), out)
	}
	out, err := runKubectlAs(own.Kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd/"+crdName)
	g.Expect(err).NotTo(HaveOccurred(), out)
	out, err = runKubectlAs(own.Kubeconfig, "apply", "--namespace=default", "-f", "config/samples/cache_v1alpha1_memcached.yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	c, err := client.New(own.Config, client.Options{Scheme: k8sClient.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())

	out, err = runKubectlAs(own.Kubeconfig, "delete", "--timeout=2m", "-f", manifest)
	g.Expect(err).NotTo(HaveOccurred(), out)
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: "memcached-operator-system"}, ns))).
		To(BeTrue(), "the operator's namespace is left")
	role := &unstructured.Unstructured{}
	role.SetAPIVersion("rbac.authorization.k8s.io/v1")
	role.SetKind("ClusterRole")
	g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: "memcached-operator-manager-role"}, role))).
		To(BeTrue(), "the operator's ClusterRole is left")
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	g.Expect(c.Get(ctx, client.ObjectKey{Name: crdName}, crd)).To(Succeed(), "deleting the operator deleted the CRD")
	g.Expect(crd.GetDeletionTimestamp()).To(BeNil(), "deleting the operator deletes the CRD")
	mc := &cachev1alpha1.Memcached{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "example-memcached"}, mc)).
		To(Succeed(), "deleting the operator deleted the Memcached")
	g.Expect(mc.DeletionTimestamp).To(BeNil(), "deleting the operator deletes the Memcached")

	// Removing the CRD is a step of its own.
	out, err = runKubectlAs(own.Kubeconfig, "delete", "--timeout=2m", "-f", crds)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: crdName}, crd))).To(BeTrue(), "the CRD is left")
}

// TestUndeployKeepsTheCRD checks what make undeploy and make build-installer
// render: config/operator is config/default without the CRD, and nothing
// else changed; config/crd is config/default's CRD alone; and the Makefile's
// undeploy deletes config/operator while build-installer writes
// dist/install.yaml from config/operator and dist/crds.yaml from config/crd.
func TestUndeployKeepsTheCRD(t *testing.T) {
	g := NewWithT(t)
	render := func(dir string) map[string]*unstructured.Unstructured {
		objects, err := localrun.Render(t.Context(), kubectl, filepath.Join(repoRoot, "config", dir))
		g.Expect(err).NotTo(HaveOccurred())
		return indexObjects(objects)
	}
	all, operator, crds := render("default"), render("operator"), render("crd")
	crdID := "CustomResourceDefinition//" + crdName
	g.Expect(all).To(HaveKey(crdID))
	for id := range operator {
		g.Expect(operator[id].GetKind()).NotTo(Equal("CustomResourceDefinition"), "config/operator renders %s", id)
	}
	g.Expect(crds).To(HaveLen(1))
	g.Expect(crds).To(HaveKey(crdID))
	g.Expect(crds[crdID].Object).To(Equal(all[crdID].Object), "config/crd's CRD differs from config/default's")
	delete(all, crdID)
	g.Expect(operator).To(Equal(all), "config/operator is not config/default without the CRD")

	makefile, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(recipe(string(makefile), "undeploy")).To(ContainSubstring(`build config/operator | "$(KUBECTL)" delete`))
	installer := recipe(string(makefile), "build-installer")
	g.Expect(installer).To(ContainSubstring("build config/crd > dist/crds.yaml"))
	g.Expect(installer).To(MatchRegexp(`render\.sh \S+ config/operator .*> dist/install\.yaml`))
}

// recipe returns the recipe lines of a target of a Makefile: those that
// start with a tab after the target's rule.
func recipe(makefile, target string) string {
	var lines []string
	in := false
	for line := range strings.SplitSeq(makefile, "\n") {
		switch {
		case strings.HasPrefix(line, target+":"):
			in = true
		case in && strings.HasPrefix(line, "\t"):
			lines = append(lines, line)
		case in:
			return strings.Join(lines, "\n")
		}
	}
	return strings.Join(lines, "\n")
}
