// Package arch holds the project's import rules (docs/design.md, STYLE):
// the CNI shim stays thin, only the controller talks to the cloud, only the
// node side touches the host, nothing in production imports the simulated
// cloud, the binaries in the image carry no release tooling, and nothing
// in them keeps the linker from dropping the methods no one calls.
package arch

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/imagebuild"
)

const module = "github.com/kuryr-dpdk/kuryr-dpdk"

// buildTags are the Makefile's GOTAGS: the rules hold for the binaries as
// make build builds them.
func buildTags(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^GOTAGS\s*:=[ \t]*(.*?)[ \t]*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the Makefile has no GOTAGS := line")
	}
	return string(m[1])
}

// deps lists the packages pkgs import, directly or not (test files
// excluded), built with the Makefile's tags.
func deps(t *testing.T, pkgs ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, p := range pkgs {
		// A package a later issue adds has no rule to break yet.
		if _, err := os.Stat(filepath.Join("../..", strings.TrimSuffix(p, "/..."))); os.IsNotExist(err) {
			continue
		}
		cmd := exec.Command("go", "list", "-tags="+buildTags(t), "-deps", "-f", "{{.ImportPath}}", p)
		cmd.Dir = "../.."
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", p, err)
		}
		out[p] = strings.Fields(string(b))
	}
	return out
}

// forbid fails for every dependency of pkgs that has one of the prefixes.
func forbid(t *testing.T, pkgs []string, why string, prefixes ...string) {
	t.Helper()
	for p, ds := range deps(t, pkgs...) {
		for _, d := range ds {
			for _, pre := range prefixes {
				if d == pre || strings.HasPrefix(d, pre+"/") {
					t.Errorf("%s imports %s: %s", p, d, why)
				}
			}
		}
	}
}

// shimMay is what the CNI shim may import of this module: itself, the
// protocol, the configuration schema and the version.
var shimMay = []string{"cmd/kuryr-cni", "internal/cniapi", "internal/netconf", "internal/version"}

func TestCNIShimIsThin(t *testing.T) {
	shim := []string{"./cmd/kuryr-cni"}
	forbid(t, shim, "the shim forwards to the daemon and imports no Kubernetes client",
		"k8s.io/client-go", "sigs.k8s.io/controller-runtime", "github.com/gophercloud")
	for p, ds := range deps(t, shim...) {
		for _, d := range ds {
			if strings.HasPrefix(d, module+"/") && !slices.Contains(shimMay, strings.TrimPrefix(d, module+"/")) {
				t.Errorf("%s imports %s: the shim may import only %s of this module", p, d, strings.Join(shimMay[1:], ", "))
			}
		}
	}
}

// TestNetconfIsStdlibOnly: the configuration schema is shared by the
// controller, the daemon and the shim, so it depends on nothing but the
// standard library.
func TestNetconfIsStdlibOnly(t *testing.T) {
	for p, ds := range deps(t, "./internal/netconf") {
		for _, d := range ds {
			if first, _, _ := strings.Cut(d, "/"); strings.Contains(first, ".") && d != module+"/internal/netconf" {
				t.Errorf("%s imports %s: internal/netconf may import the standard library only", p, d)
			}
		}
	}
}

// TestDaemonLeavesDevicesToBinding: the daemon plugs through
// internal/binding, which alone drives sysfs (internal/pci) and waits for
// devices.
func TestDaemonLeavesDevicesToBinding(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "./internal/daemon")
	cmd.Dir = "../.."
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if slices.Contains(strings.Fields(string(b)), module+"/internal/pci") {
		t.Error("internal/daemon imports internal/pci: plug devices through internal/binding")
	}
}

func TestNodeSideNeverTalksToTheCloud(t *testing.T) {
	forbid(t, []string{"./cmd/kuryr-daemon", "./internal/daemon/...", "./internal/binding/...", "./internal/pci/...", "./internal/checkpoint/..."},
		"only the controller side talks to OpenStack",
		module+"/internal/openstack", "github.com/gophercloud")
}

func TestControllerNeverTouchesAHost(t *testing.T) {
	forbid(t, []string{"./cmd/kuryr-controller", "./internal/controller/...", "./internal/openstack/..."},
		"the controller never touches a host (sysfs, netlink)",
		module+"/internal/binding", module+"/internal/pci", "github.com/vishvananda/netlink")
}

// production lists the module's production packages: every command but the
// standalone simulator, and every internal package but the simulators and the
// test harnesses under internal/testing.
func production(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "./cmd/...", "./internal/...", "./api/...")
	cmd.Dir = "../.."
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var out []string
	for _, p := range strings.Fields(string(b)) {
		rel := strings.TrimPrefix(p, module+"/")
		switch {
		case rel == "cmd/kuryr-cloudsim", rel == "internal/cloudsim",
			strings.HasPrefix(rel, "internal/testing/"):
			continue
		}
		out = append(out, "./"+rel)
	}
	if len(out) < 10 {
		t.Fatalf("only %d production packages found: wrong repository root?", len(out))
	}
	return out
}

func TestProductionNeverImportsTheSimulationOrHarness(t *testing.T) {
	forbid(t, production(t),
		"only tests, the all-in-one environment and benchmarks may use the simulations and test harnesses",
		module+"/internal/cloudsim", module+"/internal/testing")
}

func TestShippedBinariesCarryNoReleaseTooling(t *testing.T) {
	forbid(t, []string{"./cmd/kuryr-controller", "./cmd/kuryr-daemon", "./cmd/kuryr-cni", "./cmd/kuryrctl"},
		"image building (internal/imagebuild, make image) and kustomize rendering are release and test tooling, not part of the binaries in the image",
		module+"/internal/imagebuild", "github.com/google/go-containerregistry", "sigs.k8s.io/kustomize")
}

// TestShippedBinariesLetTheLinkerDropUnusedMethods: nothing in the shipped
// binaries, as make build builds them, calls reflect's MethodByName with a
// name known only at run time, as text/template does (html/template uses
// it; gRPC's golang.org/x/net/trace brought it into kuryr-daemon): with
// such a call in a program the linker keeps every exported method of every
// type it links, and kuryr-daemon was 57 MB instead of 37 (15 MiB more of
// its pages resident on every node). And the Makefile's GOTAGS, which
// leave that trace package out, are the ones the all-in-one builds with
// when it is given no binaries (imagebuild.BuildTags).
func TestShippedBinariesLetTheLinkerDropUnusedMethods(t *testing.T) {
	if tags := buildTags(t); tags != imagebuild.BuildTags {
		t.Errorf("the Makefile builds with GOTAGS %q, imagebuild.BuildTags is %q: the two must agree", tags, imagebuild.BuildTags)
	}
	forbid(t, []string{"./cmd/kuryr-controller", "./cmd/kuryr-daemon", "./cmd/kuryr-cni", "./cmd/kuryrctl"},
		"its reflect.Value.MethodByName calls keep every exported method of every linked type in the binary (imagebuild.BuildTags)",
		"text/template", "html/template", "golang.org/x/net/trace")
}
