package imagebuild

import (
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Result says what Build wrote.
type Result struct {
	// Digest is the image manifest's digest (sha256:…): what `ctr images ls`
	// shows, and what a manifest can pin the image by.
	Digest v1.Hash
	// Name is the fully qualified name the layout gives the image.
	Name string
}

// Build makes the image spec describes and writes it to out as an OCI image
// layout tarball. The layer is staged in a temporary file under tmpDir ("" is
// the system's), removed before Build returns.
func Build(spec Spec, out io.Writer, tmpDir string) (Result, error) {
	ref, err := ParseReference(spec.Ref)
	if err != nil {
		return Result{}, err
	}
	entries, err := spec.normalize()
	if err != nil {
		return Result{}, fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	staged, err := os.CreateTemp(tmpDir, "imagebuild-layer-*.tar")
	if err != nil {
		return Result{}, fmt.Errorf("image %s: stage the layer: %w", spec.Ref, err)
	}
	defer os.Remove(staged.Name())
	err = writeLayer(staged, entries, spec.created())
	if cerr := staged.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Result{}, fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	img, err := image(spec, staged.Name())
	if err != nil {
		return Result{}, fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	digest, err := writeLayout(out, img, ref, spec.created())
	if err != nil {
		return Result{}, fmt.Errorf("image %s: %w", spec.Ref, err)
	}
	return Result{Digest: digest, Name: ref.Full}, nil
}

// image assembles the OCI image: config from spec, one gzip layer from the
// staged tar.
func image(spec Spec, layerTar string) (v1.Image, error) {
	layer, err := tarball.LayerFromFile(layerTar, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	osName, arch := spec.platform()
	created := v1.Time{Time: spec.created()}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	base, err = mutate.ConfigFile(base, &v1.ConfigFile{
		Created:      created,
		OS:           osName,
		Architecture: arch,
		Config: v1.Config{
			Entrypoint: spec.Entrypoint,
			Cmd:        spec.Cmd,
			Env:        spec.Env,
			WorkingDir: spec.WorkingDir,
			User:       spec.User,
			Labels:     spec.Labels,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: created, CreatedBy: "imagebuild (kuryr-dpdk hack/image)"},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	return img, nil
}
