package aio

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/imagebuild"
)

// DemoImage is the demo workload's image on real nodes:
// imagebuild.DemoSpec (Debian's static busybox with every applet: a shell,
// ip, cat, sleep), as `make image` builds it, imported into every node's
// containerd.
const DemoImage = "kuryr-dpdk/demo:dev"

// writeImage builds spec into <dir>/<file> (an OCI layout tarball) and
// returns its path.
func writeImage(dir, file string, spec imagebuild.Spec) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, file)
	out, err := os.Create(path)
	if err != nil {
		return "", err
	}
	_, err = imagebuild.Build(spec, out, dir)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("build the %s image: %w", spec.Ref, err)
	}
	return path, nil
}

// buildDemoImage writes DemoImage into dir.
func buildDemoImage(dir string) (string, error) {
	spec, err := imagebuild.DemoSpec(DemoImage)
	if err != nil {
		return "", err
	}
	return writeImage(dir, "demo.oci.tar", spec)
}
