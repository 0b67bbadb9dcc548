package e2e

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/test/internal/localrun"
	"example.com/memcached-operator/test/internal/proc"
	"example.com/memcached-operator/test/internal/simcluster"
)

// TestReleaseRunsTheSample reads back the image make image wrote, applies
// dist/crds.yaml and dist/install.yaml, made by make build-installer, to a
// simulated cluster of its own, and runs the manager binary taken from the image, for this
// machine's platform, with the command and arguments of the installed
// Deployment and a token of its ServiceAccount: the sample converges. The
// pod itself is fake on the simulated cluster, so the process stands in for
// it; only the kubeconfig and the leader election namespace, which a pod
// gets from its environment, are added.
func TestReleaseRunsTheSample(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	layoutDir, crds, manifest := os.Getenv("IMAGE_LAYOUT"), os.Getenv("CRDS_MANIFEST"), os.Getenv("INSTALL_MANIFEST")
	if layoutDir == "" || crds == "" || manifest == "" {
		t.Fatal("IMAGE_LAYOUT, CRDS_MANIFEST and INSTALL_MANIFEST must be set: run this test with 'make test-e2e', which runs make build-installer")
	}

	// The image: two platforms, each one layer holding only the binary, run
	// as a numeric non-root user.
	index, err := layout.ImageIndexFromPath(layoutDir)
	g.Expect(err).NotTo(HaveOccurred())
	digest, err := index.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	manifests, err := index.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())
	platforms := make([]string, 0, len(manifests.Manifests))
	binary := filepath.Join(t.TempDir(), "manager")
	for _, m := range manifests.Manifests {
		platforms = append(platforms, m.Platform.String())
		img, err := index.Image(m.Digest)
		g.Expect(err).NotTo(HaveOccurred())
		config, err := img.ConfigFile()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(config.Config.User).To(Equal("65532:65532"))
		g.Expect(config.Config.Entrypoint).To(Equal([]string{"/manager"}))
		g.Expect(config.Config.Labels).To(HaveKey("org.opencontainers.image.source"))
		g.Expect(config.Config.Labels).To(HaveKeyWithValue("org.opencontainers.image.licenses", "Apache-2.0"))
		layers, err := img.Layers()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(layers).To(HaveLen(1))
		rc, err := layers[0].Uncompressed()
		g.Expect(err).NotTo(HaveOccurred())
		files := extract(g, rc, m.Platform.Architecture == runtime.GOARCH, binary)
		g.Expect(files).To(Equal([]string{"manager"}), "the layer holds more than the binary")
	}
	g.Expect(platforms).To(ContainElements("linux/amd64", "linux/arm64"))

	// The release manifests, applied for real: the CRD first.
	dir := filepath.Join(logDir, "release")
	own, err := simcluster.Start(ctx, simcluster.Options{BinDir: filepath.Dir(kubectl), DataDir: filepath.Join(dir, "cluster")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = own.Close() })
	out, err := runKubectlAs(own.Kubeconfig, "apply", "--server-side", "-f", crds)
	g.Expect(err).NotTo(HaveOccurred(), out)
	out, err = runKubectlAs(own.Kubeconfig, "apply", "--server-side", "-f", manifest)
	g.Expect(err).NotTo(HaveOccurred(), out)
	out, err = runKubectlAs(own.Kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "crd/memcacheds.cache.example.com")
	g.Expect(err).NotTo(HaveOccurred(), out)
	c, err := client.New(own.Config, client.Options{Scheme: k8sClient.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	const operatorNS = "memcached-operator-system"
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNS}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: "memcached-operator-controller-manager"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: "memcached-operator-controller-manager-metrics-service"}},
	} {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed(), "%T %s", obj, obj.GetName())
	}
	role := &unstructured.Unstructured{}
	role.SetAPIVersion("rbac.authorization.k8s.io/v1")
	role.SetKind("ClusterRole")
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "memcached-operator-manager-role"}, role)).To(Succeed())
	deployment := &appsv1.Deployment{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: "memcached-operator-controller-manager"}, deployment)).To(Succeed())
	container := deployment.Spec.Template.Spec.Containers[0]
	g.Expect(container.Image).To(HaveSuffix("@" + digest.String()))

	// The binary of the image, as the Deployment runs it.
	g.Expect(container.Command).To(Equal([]string{"/manager"}))
	kubeconfig := filepath.Join(dir, "operator.kubeconfig")
	g.Expect(localrun.TokenKubeconfig(ctx, own.Config, operatorNS, deployment.Spec.Template.Spec.ServiceAccountName, kubeconfig)).To(Succeed())
	args := append(slices.Clone(container.Args), "--kubeconfig="+kubeconfig, "--leader-election-namespace="+operatorNS)
	p, err := proc.StartWithEnv("released-manager", filepath.Join(dir, "operator.log"), nil, binary, args...)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	probe := probeAddress(container.Args)
	g.Eventually(func() error {
		if err := p.Exited(); err != nil {
			return StopTrying(err.Error())
		}
		return get(ctx, "http://127.0.0.1"+probe+"/readyz")
	}, time.Minute).Should(Succeed())

	out, err = runKubectlAs(own.Kubeconfig, "apply", "--namespace=default", "-f", "config/samples/cache_v1alpha1_memcached.yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Eventually(func(g Gomega) {
		mc := &cachev1alpha1.Memcached{}
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "example-memcached"}, mc)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(mc.Status.Conditions, cachev1alpha1.ConditionAvailable)).To(BeTrue())
		g.Expect(mc.Status.Nodes).To(HaveLen(3))
	}, 2*time.Minute).Should(Succeed())
	log, err := os.ReadFile(filepath.Join(dir, "operator.log"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.ToLower(string(log))).NotTo(ContainSubstring("forbidden"))
}

// extract reads a layer's tar stream, writes the manager binary to path when
// keep is set, and returns the names of the files in it.
func extract(g Gomega, rc io.ReadCloser, keep bool, path string) []string {
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		g.Expect(err).NotTo(HaveOccurred())
		names = append(names, h.Name)
		if keep && h.Name == "manager" {
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
			g.Expect(err).NotTo(HaveOccurred())
			_, err = io.Copy(f, tr)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(f.Close()).To(Succeed())
		}
	}
}

// probeAddress returns the port part of --health-probe-bind-address in args.
func probeAddress(args []string) string {
	for _, a := range args {
		if value, ok := strings.CutPrefix(a, "--health-probe-bind-address="); ok {
			return value
		}
	}
	return ":8081"
}

func get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}
