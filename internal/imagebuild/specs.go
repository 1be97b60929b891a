package imagebuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The project's images, defined once: `make image` builds them (hack/image
// -preset), and the all-in-one's real nodes run them (test/aio), so the
// image the tests run is the one an operator installs.

// KuryrBinaries are the programs of the kuryr-dpdk image, in /usr/bin.
var KuryrBinaries = []string{"kuryr-controller", "kuryr-daemon", "kuryr-cni", "kuryrctl"}

// BuildTags are the build tags KuryrBinaries are built with (the
// Makefile's GOTAGS, which test/arch checks against this). grpcnotrace
// leaves out gRPC's golang.org/x/net/trace, whose html/template calls
// reflect's MethodByName with names known only at run time: with that
// call in a program the linker keeps every exported method of every type
// it links. kuryr-daemon (gRPC for its DRA plugin) is 37 MB with the tag
// and 57 MB without. gRPC's tracing (grpc.EnableTracing) is off by
// default and nothing here turns it on.
const BuildTags = "grpcnotrace"

// KuryrSpec is the kuryr-dpdk image named ref: KuryrBinaries from binDir
// (static: the image has no libc), /tmp, and `kuryrctl help` as its
// command (the manifests give each container its own). version, when not
// empty, is the label org.opencontainers.image.version.
func KuryrSpec(ref, binDir, version string) Spec {
	spec := Spec{Ref: ref, Env: []string{"PATH=/usr/bin:/bin"}, Cmd: []string{"/usr/bin/kuryrctl", "help"}, WorkingDir: "/",
		Entries: []Entry{{Path: "/tmp", Mode: 0o777 | os.ModeSticky}},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "kuryr-dpdk",
			"org.opencontainers.image.description": strings.Join(KuryrBinaries, ", "),
		}}
	for _, b := range KuryrBinaries {
		spec.Entries = append(spec.Entries, Entry{Path: "/usr/bin/" + b, Source: filepath.Join(binDir, b), Mode: 0o755})
	}
	if version != "" {
		spec.Labels["org.opencontainers.image.version"] = version
	}
	return spec
}

// Busybox is Debian's busybox-static (package busybox-static), the demo
// image's one binary.
const Busybox = "/bin/busybox"

// DemoSpec is the demo workload image named ref: Busybox and a link to it
// for every applet it lists (a shell, ip, cat, sleep, …), and /tmp; its
// command is /bin/sh. Its description label names the busybox package's
// version.
func DemoSpec(ref string) (Spec, error) {
	list, err := exec.Command(Busybox, "--list-full").Output()
	if err != nil {
		return Spec{}, fmt.Errorf("list the applets of %s (Debian's busybox-static; hack/install-deps.sh installs it): %w", Busybox, err)
	}
	version, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "busybox-static").Output()
	if err != nil {
		return Spec{}, fmt.Errorf("the version of Debian's busybox-static: %w", err)
	}
	spec := Spec{Ref: ref, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, Cmd: []string{"/bin/sh"}, WorkingDir: "/",
		Entries: []Entry{{Path: Busybox, Source: Busybox, Mode: 0o755}, {Path: "/tmp", Mode: 0o777 | os.ModeSticky}},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "kuryr-dpdk demo workload",
			"org.opencontainers.image.description": "Debian busybox-static " + string(version) + ": a shell and ip",
		}}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "bin/busybox" || applet == "linuxrc" {
			continue
		}
		spec.Entries = append(spec.Entries, Entry{Path: "/" + applet, Link: Busybox})
	}
	return spec, nil
}

// MultusSpec is a Multus CNI image named ref with the layout of Multus' own
// thin image (its images/Dockerfile): /thin_entrypoint, the installer the
// DaemonSet of deploy/third-party/multus runs, and the multus binary it
// copies onto the node, /usr/src/multus-cni/bin/multus; both from binDir
// (hack/build-multus.sh: static, the image has no libc), and /tmp.
func MultusSpec(ref, binDir, version string) Spec {
	return Spec{Ref: ref, Env: []string{"PATH=/usr/bin:/bin"}, Entrypoint: []string{"/thin_entrypoint"}, WorkingDir: "/",
		Entries: []Entry{
			{Path: "/thin_entrypoint", Source: filepath.Join(binDir, "thin_entrypoint"), Mode: 0o755},
			{Path: "/usr/src/multus-cni/bin/multus", Source: filepath.Join(binDir, "multus"), Mode: 0o755},
			{Path: "/tmp", Mode: 0o777 | os.ModeSticky},
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "multus-cni (thin)",
			"org.opencontainers.image.description": "gopkg.in/k8snetworkplumbingwg/multus-cni.v4 " + version + " built from the Go module proxy",
			"org.opencontainers.image.version":     version,
		}}
}
