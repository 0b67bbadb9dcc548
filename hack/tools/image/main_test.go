package main

import (
	"archive/tar"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// fakeBinaries writes a stand-in binary per platform and returns the
// os/arch=binary arguments.
func fakeBinaries(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	platforms := []string{"linux/amd64", "linux/arm64"}
	args := make([]string, 0, len(platforms))
	for _, p := range platforms {
		path := filepath.Join(dir, strings.ReplaceAll(p, "/", "-"))
		if err := os.WriteFile(path, []byte("binary for "+p), 0o755); err != nil {
			t.Fatal(err)
		}
		args = append(args, p+"="+path)
	}
	return args
}

var labels = map[string]string{"org.opencontainers.image.version": "0.1.0", "org.opencontainers.image.licenses": "Apache-2.0"}

func TestImageHoldsOnlyTheBinaryAndRunsAsNonRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "image")
	created := time.Unix(1780000000, 0).UTC()
	digest, err := write(dir, created, labels, fakeBinaries(t))
	if err != nil {
		t.Fatal(err)
	}
	images, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := images.Digest(); got != digest {
		t.Errorf("the layout holds index %s, write returned %s", got, digest)
	}
	manifest, _ := images.IndexManifest()
	platforms := make([]string, 0, len(manifest.Manifests))
	for _, m := range manifest.Manifests {
		platforms = append(platforms, m.Platform.String())
		img, err := images.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		config, _ := img.ConfigFile()
		if config.Config.User != "65532:65532" || !slices.Equal(config.Config.Entrypoint, []string{"/manager"}) ||
			config.OS+"/"+config.Architecture != m.Platform.String() || !config.Created.Equal(created) ||
			config.Config.Labels["org.opencontainers.image.licenses"] != "Apache-2.0" {
			t.Errorf("%s: config %+v", m.Platform, config.Config)
		}
		layers, _ := img.Layers()
		if len(layers) != 1 {
			t.Fatalf("%s: %d layers, want the binary's only", m.Platform, len(layers))
		}
		files := layerFiles(t, layers[0])
		if len(files) != 1 || files["manager"] != "binary for "+m.Platform.String() {
			t.Errorf("%s: the layer holds %v, want the binary alone", m.Platform, files)
		}
	}
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v", platforms)
	}

	// The same binaries give the same digest.
	again, err := write(filepath.Join(t.TempDir(), "image"), created, labels, fakeBinaries(t))
	if err != nil || again != digest {
		t.Errorf("a second build gave %s, %v; want %s", again, err, digest)
	}
}

func TestPushKeepsTheDigest(t *testing.T) {
	server := httptest.NewServer(registry.New())
	defer server.Close()
	dir := filepath.Join(t.TempDir(), "image")
	digest, err := write(dir, time.Unix(0, 0), labels, fakeBinaries(t))
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(server.URL, "http://") + "/memcached-operator:0.1.0"
	pushed, err := pushLayout(dir, ref)
	if err != nil {
		t.Fatal(err)
	}
	if pushed != digest {
		t.Errorf("pushed %s, built %s", pushed, digest)
	}
	byDigest, err := name.ParseReference(strings.Split(ref, ":0")[0] + "@" + digest.String())
	if err != nil {
		t.Fatal(err)
	}
	index, err := remote.Index(byDigest)
	if err != nil {
		t.Fatalf("pulling %s: %v", byDigest, err)
	}
	manifest, _ := index.IndexManifest()
	if len(manifest.Manifests) != 2 {
		t.Errorf("the pulled index has %d images, want 2", len(manifest.Manifests))
	}
}

func TestPinResolvesTagsToTheDigestTheRegistryServes(t *testing.T) {
	server := httptest.NewServer(registry.New())
	defer server.Close()
	dir := filepath.Join(t.TempDir(), "image")
	digest, err := write(dir, time.Unix(0, 0), labels, fakeBinaries(t))
	if err != nil {
		t.Fatal(err)
	}
	repo := strings.TrimPrefix(server.URL, "http://") + "/library/memcached"
	if _, err := pushLayout(dir, repo+":1.6.39-alpine"); err != nil {
		t.Fatal(err)
	}

	pinned, err := pin(repo + ":1.6.39-alpine")
	if err != nil {
		t.Fatal(err)
	}
	if want := repo + ":1.6.39-alpine@" + digest.String(); pinned != want {
		t.Errorf("pinned %s, want %s", pinned, want)
	}
	// The pinned reference pulls the same image, and pins to itself.
	again, err := pin(pinned)
	if err != nil || again != pinned {
		t.Errorf("pinning %s again gave %s, %v", pinned, again, err)
	}
	ref, err := name.ParseReference(pinned)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Index(ref); err != nil {
		t.Errorf("pulling %s: %v", pinned, err)
	}
	// A tag the registry does not have is an error, not a guess.
	if got, err := pin(repo + ":9.9.9"); err == nil {
		t.Errorf("a missing tag was pinned to %s", got)
	}
}

func TestPinInPinsEveryMentionOfTheImages(t *testing.T) {
	server := httptest.NewServer(registry.New())
	defer server.Close()
	dir := filepath.Join(t.TempDir(), "image")
	digest, err := write(dir, time.Unix(0, 0), labels, fakeBinaries(t))
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(server.URL, "http://")
	memcached, exporter := host+"/library/memcached:1.6.39-alpine", host+"/prom/memcached-exporter:v0.15.4"
	for _, ref := range []string{memcached, exporter} {
		if _, err := pushLayout(dir, ref); err != nil {
			t.Fatal(err)
		}
	}
	manifest := filepath.Join(t.TempDir(), "install.yaml")
	before := "args:\n- --memcached-image=" + memcached + "\n- --exporter-image=" + exporter + "\n" +
		"relatedImages:\n- image: " + memcached + "\n- image: " + exporter + "@" + digest.String() + "\n"
	if err := os.WriteFile(manifest, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pinIn(manifest, []string{memcached, exporter}); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	want := "args:\n- --memcached-image=" + memcached + "@" + digest.String() + "\n- --exporter-image=" + exporter + "@" + digest.String() + "\n" +
		"relatedImages:\n- image: " + memcached + "@" + digest.String() + "\n- image: " + exporter + "@" + digest.String() + "\n"
	if string(after) != want {
		t.Errorf("pinned manifest:\n%s\nwant:\n%s", after, want)
	}
	if err := pinIn(manifest, []string{host + "/library/redis:7"}); err == nil {
		t.Error("pinning an image the registry does not have succeeded")
	}
}

// layerFiles returns the regular files of layer and their contents.
func layerFiles(t *testing.T, layer v1.Layer) map[string]string {
	t.Helper()
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = string(data)
	}
}
