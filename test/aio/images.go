package aio

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/imagebuild"
)

// DemoImage is the demo workload's image on real nodes: Debian's static
// busybox with every applet (a shell, ip, cat, sleep), as `make image` builds
// it (hack/image.sh), imported into every node's containerd.
const DemoImage = "kuryr-dpdk/demo:dev"

// busybox is Debian's busybox-static, the demo image's one binary.
const busybox = "/bin/busybox"

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

// buildDemoImage writes DemoImage into dir: /bin/busybox and a link to it
// for each applet it lists.
func buildDemoImage(dir string) (string, error) {
	list, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return "", fmt.Errorf("list the applets of %s (Debian's busybox-static; hack/install-deps.sh installs it): %w", busybox, err)
	}
	spec := imagebuild.Spec{Ref: DemoImage, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"/bin/sh"},
		Entries: []imagebuild.Entry{{Path: busybox, Source: busybox, Mode: 0o755}, {Path: "/tmp", Mode: 0o777 | os.ModeSticky}}}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "bin/busybox" || applet == "linuxrc" {
			continue
		}
		spec.Entries = append(spec.Entries, imagebuild.Entry{Path: "/" + applet, Link: busybox})
	}
	return writeImage(dir, "demo.oci.tar", spec)
}
