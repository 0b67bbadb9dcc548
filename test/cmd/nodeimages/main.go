// Command nodeimages writes the images the real node runs, without a
// container engine or a registry, into one archive that containerd imports
// (ctr images import):
//
//   - the pods' sandbox image, from the pause binary;
//   - a memcached image from a root file system of Debian packages
//     (hack/fetch-memcached-rootfs.sh), which matches the official image
//     where the operator relies on it: entrypoint memcached, USER memcache
//     by name, UID 11211, a shell for the pods' scripts;
//   - a memcached_exporter image, from its binary;
//   - the operator's image, taken for this machine's platform from the OCI layout that
//     make image writes;
//   - the image of test/cmd/memcached-client, a client that runs in a pod.
//
// Every flag is required.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"example.com/memcached-operator/test/internal/realnode"
)

func main() {
	out := flag.String("out", "", "The archive to write.")
	pause := flag.String("pause", "", "The pause binary, static.")
	rootfs := flag.String("memcached-rootfs", "", "The memcached image's root file system.")
	exporter := flag.String("exporter", "", "The memcached_exporter binary, static.")
	operator := flag.String("operator-layout", "", "The OCI layout of the operator's image.")
	client := flag.String("client", "", "The memcached-client binary, static.")
	flag.Parse()
	if err := run(*out, *pause, *rootfs, *exporter, *operator, *client); err != nil {
		fmt.Fprintf(os.Stderr, "nodeimages: %v\n", err)
		os.Exit(1)
	}
}

func run(out, pause, rootfs, exporter, operator, client string) error {
	if out == "" || pause == "" || rootfs == "" || exporter == "" || operator == "" || client == "" {
		return errors.New("--out, --pause, --memcached-rootfs, --exporter, --operator-layout and --client are required")
	}
	images := map[name.Reference]v1.Image{}
	add := func(ref string, img v1.Image, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
		tag, err := name.NewTag(ref)
		if err != nil {
			return err
		}
		images[tag] = img
		return nil
	}
	img, err := binaryImage(pause, "/pause", "65535")
	if err := add(realnode.PauseImage, img, err); err != nil {
		return err
	}
	img, err = binaryImage(exporter, "/bin/memcached_exporter", "nobody")
	if err := add(realnode.ExporterImage, img, err); err != nil {
		return err
	}
	img, err = binaryImage(client, "/memcached-client", "65532")
	if err := add(realnode.ClientImage, img, err); err != nil {
		return err
	}
	img, err = memcachedImage(rootfs)
	if err := add(realnode.MemcachedImage, img, err); err != nil {
		return err
	}
	img, err = layoutImage(operator)
	if err := add(realnode.OperatorImage, img, err); err != nil {
		return err
	}
	return tarball.MultiRefWriteToFile(out, images)
}

// binaryImage is an image of a single static binary, its entrypoint.
func binaryImage(binary, path, user string) (v1.Image, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := addDirs(tw, filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(path, "/"), Mode: 0o555, Size: int64(len(data)),
		Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return imageOf(buf.Bytes(), v1.Config{Entrypoint: []string{path}, User: user})
}

// addDirs writes the directories of dir, from the root down.
func addDirs(tw *tar.Writer, dir string) error {
	if dir == "/" || dir == "." {
		return nil
	}
	if err := addDirs(tw, filepath.Dir(dir)); err != nil {
		return err
	}
	return tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755, Typeflag: tar.TypeDir})
}

// memcachedImage is the image of the root file system dir, run as memcache.
func memcachedImage(dir string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if d.Type()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		header, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		header.Name = filepath.ToSlash(rel)
		header.Uid, header.Gid, header.Uname, header.Gname = 0, 0, "", ""
		if rel == "home/memcache" {
			header.Uid, header.Gid = 11211, 11211
		}
		if d.IsDir() {
			header.Name += "/"
		}
		if err := tw.WriteHeader(header); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return imageOf(buf.Bytes(), v1.Config{
		Entrypoint: []string{"memcached"},
		User:       "memcache",
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		WorkingDir: "/",
	})
}

// imageOf is the image of one layer, for this machine's platform.
func imageOf(layerTar []byte, config v1.Config) (v1.Image, error) {
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	file, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	file = file.DeepCopy()
	file.OS, file.Architecture = "linux", runtime.GOARCH
	file.Config = config
	return mutate.ConfigFile(img, file)
}

// layoutImage is the image of the layout dir, as make image writes it, for
// linux and this machine's architecture.
func layoutImage(dir string) (v1.Image, error) {
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, m := range manifest.Manifests {
		if m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
			return index.Image(m.Digest)
		}
	}
	return nil, fmt.Errorf("%s holds no image for linux/%s", dir, runtime.GOARCH)
}
