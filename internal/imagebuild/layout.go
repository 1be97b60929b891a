package imagebuild

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on the image's entry in index.json that name it on import.
const (
	// AnnotationRefName is the OCI image layout's name of the image (the
	// tag, as `docker save` writes it).
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationContainerdName is the full name containerd (`ctr images
	// import`) gives the image.
	AnnotationContainerdName = "io.containerd.image.name"
)

// ociLayoutFile is the content of the layout's oci-layout file.
const ociLayoutFile = `{"imageLayoutVersion":"1.0.0"}`

// writeLayout writes img as an OCI image layout tarball: oci-layout,
// index.json naming the image, and blobs/sha256/ with the manifest, the
// config and the layers, in that order. It returns the manifest's digest.
func writeLayout(out io.Writer, img v1.Image, ref Reference, mtime time.Time) (v1.Hash, error) {
	manifest, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("manifest: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("manifest digest: %w", err)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("config: %w", err)
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("config digest: %w", err)
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1,
			Digest:    digest,
			Size:      int64(len(manifest)),
			Annotations: map[string]string{
				AnnotationRefName:        ref.Tag,
				AnnotationContainerdName: ref.Full,
			},
		}},
	})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("index.json: %w", err)
	}

	tw := &layoutWriter{tw: tar.NewWriter(out), mtime: mtime}
	tw.dir("blobs/")
	tw.dir("blobs/sha256/")
	tw.bytes("oci-layout", []byte(ociLayoutFile))
	tw.bytes("index.json", index)
	tw.bytes(blobPath(digest), manifest)
	tw.bytes(blobPath(configDigest), config)
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layers: %w", err)
	}
	for _, l := range layers {
		tw.layer(l)
	}
	if tw.err == nil {
		tw.err = tw.tw.Close()
	}
	if tw.err != nil {
		return v1.Hash{}, fmt.Errorf("write the layout: %w", tw.err)
	}
	return digest, nil
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// layoutWriter writes tar entries with fixed metadata and keeps the first
// error, so that writeLayout reads as the list of what the layout holds.
type layoutWriter struct {
	tw    *tar.Writer
	mtime time.Time
	err   error
}

func (w *layoutWriter) header(name string, typ byte, mode, size int64) bool {
	if w.err != nil {
		return false
	}
	w.err = w.tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: size, ModTime: w.mtime, Format: tar.FormatPAX})
	return w.err == nil
}

func (w *layoutWriter) dir(name string) { w.header(name, tar.TypeDir, 0o755, 0) }

func (w *layoutWriter) bytes(name string, b []byte) {
	if w.header(name, tar.TypeReg, 0o644, int64(len(b))) {
		_, w.err = w.tw.Write(b)
	}
}

func (w *layoutWriter) layer(l v1.Layer) {
	if w.err != nil {
		return
	}
	digest, err := l.Digest()
	if err != nil {
		w.err = fmt.Errorf("layer digest: %w", err)
		return
	}
	size, err := l.Size()
	if err != nil {
		w.err = fmt.Errorf("layer %s size: %w", digest, err)
		return
	}
	rc, err := l.Compressed()
	if err != nil {
		w.err = fmt.Errorf("layer %s: %w", digest, err)
		return
	}
	defer rc.Close()
	if !w.header(blobPath(digest), tar.TypeReg, 0o644, size) {
		return
	}
	if _, err := io.Copy(w.tw, rc); err != nil {
		w.err = fmt.Errorf("layer %s: %w", digest, err)
	}
}
