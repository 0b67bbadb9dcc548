// Command image writes the operator's container image, as an OCI image
// layout, from manager binaries built beforehand: one image per platform,
// each a single layer holding only the binary, on no base image (the binary
// is static and needs no shell, no libc and no user database), run as a
// numeric non-root user. Identical binaries and flags give identical bytes,
// and so the same digest.
//
//	go run . --out ../../../dist/image --version 0.1.0 --revision $(git rev-parse HEAD) \
//		--created $(git log -1 --format=%ct) linux/amd64=../../../bin/image/linux-amd64/manager ...
//
// With --push, it pushes the image of a layout to a registry instead, with
// the credentials of the local Docker config, and prints its digest:
//
//	go run . --push registry.example.com/memcached-operator:0.1.0 ../../../dist/image
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// user is the numeric user and group the manager runs as: a kubelet can then
// check runAsNonRoot without a user database in the image.
const user = "65532:65532"

// binaryPath is where the manager is in the image, and its entrypoint.
const binaryPath = "/manager"

func main() {
	out := flag.String("out", "dist/image", "Directory of the OCI image layout to write; it is replaced.")
	version := flag.String("version", "0.1.0", "The image's version label.")
	revision := flag.String("revision", "", "The source revision the binaries were built from.")
	source := flag.String("source", "https://example.com/memcached-operator", "The image's source label.")
	created := flag.Int64("created", 0, "The image's creation time, in seconds since the epoch, e.g. the commit's.")
	push := flag.String("push", "", "Push the image of the layout given as argument to this reference instead.")
	resolve := flag.Bool("resolve", false, "Print each image reference given as argument pinned by the digest "+
		"its registry serves for it (name:tag@sha256:...) instead, one a line.")
	pinInFile := flag.String("pin-in", "", "Rewrite this file instead: every image reference given as argument "+
		"in it, pinned by the digest its registry serves for it.")
	flag.Parse()
	if *pinInFile != "" {
		if err := pinIn(*pinInFile, flag.Args(), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			fmt.Fprintf(os.Stderr, "image: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if *resolve {
		for _, ref := range flag.Args() {
			pinned, err := pin(ref, remote.WithAuthFromKeychain(authn.DefaultKeychain))
			if err != nil {
				fmt.Fprintf(os.Stderr, "image: %v\n", err)
				os.Exit(1)
			}
			fmt.Println(pinned)
		}
		return
	}
	if *push != "" {
		digest, err := pushLayout(flag.Arg(0), *push, remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			fmt.Fprintf(os.Stderr, "image: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(digest)
		return
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "image: give one or more os/arch=binary arguments")
		os.Exit(2)
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "memcached-operator",
		"org.opencontainers.image.description": "A Kubernetes operator for memcached",
		"org.opencontainers.image.source":      *source,
		"org.opencontainers.image.version":     *version,
		"org.opencontainers.image.revision":    *revision,
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	digest, err := write(*out, time.Unix(*created, 0).UTC(), labels, flag.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(digest)
}

// write writes the image index of the given os/arch=binary platforms to
// the layout dir, and returns its digest.
func write(dir string, created time.Time, labels map[string]string, platforms []string) (v1.Hash, error) {
	index := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		platform, binary, ok := strings.Cut(p, "=")
		osName, arch, ok2 := strings.Cut(platform, "/")
		if !ok || !ok2 {
			return v1.Hash{}, fmt.Errorf("%q is not os/arch=binary", p)
		}
		img, err := image(binary, &v1.Platform{OS: osName, Architecture: arch}, created, labels)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("%s: %w", platform, err)
		}
		index = mutate.AppendManifests(index, mutate.IndexAddendum{
			Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}},
		})
	}
	if err := os.RemoveAll(dir); err != nil {
		return v1.Hash{}, err
	}
	if _, err := layout.Write(dir, index); err != nil {
		return v1.Hash{}, fmt.Errorf("failed to write the image layout: %w", err)
	}
	return index.Digest()
}

// image returns the image of one platform: the binary alone, as binaryPath.
func image(binary string, platform *v1.Platform, created time.Time, labels map[string]string) (v1.Image, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{
		Name: strings.TrimPrefix(binaryPath, "/"), Mode: 0o555, Size: int64(len(data)),
		ModTime: created, Typeflag: tar.TypeReg, Format: tar.FormatPAX,
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	config, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	config = config.DeepCopy()
	config.OS, config.Architecture = platform.OS, platform.Architecture
	config.Created = v1.Time{Time: created}
	config.Config.Entrypoint = []string{binaryPath}
	config.Config.User = user
	config.Config.WorkingDir = "/"
	config.Config.Labels = labels
	config.History = []v1.History{{Created: v1.Time{Time: created}, CreatedBy: "make image: " + binaryPath,
		Comment: "the manager binary, " + strconv.Itoa(len(data)) + " bytes"}}
	return mutate.ConfigFile(img, config)
}

// pin returns ref pinned by the digest of what its registry serves for it
// (for a multi-platform image, its index): name:tag@sha256:..., so that the
// tag still says which version it is. A reference that has a digest already
// is returned as it is.
func pin(ref string, options ...remote.Option) (string, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if _, ok := parsed.(name.Digest); ok {
		return ref, nil
	}
	descriptor, err := remote.Head(parsed, options...)
	if err != nil {
		return "", fmt.Errorf("failed to resolve %s: %w", ref, err)
	}
	return ref + "@" + descriptor.Digest.String(), nil
}

// pinIn rewrites the file at path with every reference of refs in it pinned
// by its digest (see pin). A reference already followed by a digest there is
// left as it is; a reference the file does not hold is an error, as the file
// is then not the one meant.
func pinIn(path string, refs []string, options ...remote.Option) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := string(data)
	for _, ref := range refs {
		pinned, err := pin(ref, options...)
		if err != nil {
			return err
		}
		if !strings.Contains(text, ref) {
			return fmt.Errorf("%s does not hold %s", path, ref)
		}
		var out strings.Builder
		for rest := text; ; {
			i := strings.Index(rest, ref)
			if i < 0 {
				out.WriteString(rest)
				break
			}
			out.WriteString(rest[:i])
			rest = rest[i+len(ref):]
			if strings.HasPrefix(rest, "@") {
				out.WriteString(ref)
			} else {
				out.WriteString(pinned)
			}
		}
		text = out.String()
	}
	return os.WriteFile(path, []byte(text), 0o644) //nolint:gosec // a manifest, as readable as the one it replaces
}

// pushLayout pushes the image index of the layout dir to ref and returns its
// digest, which is the layout's.
func pushLayout(dir, ref string, options ...remote.Option) (v1.Hash, error) {
	images, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	tag, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.WriteIndex(tag, images, options...); err != nil {
		return v1.Hash{}, fmt.Errorf("failed to push %s: %w", ref, err)
	}
	return images.Digest()
}
