// Package arch holds the project's import rules (docs/design.md, STYLE):
// the CNI shim stays thin, only the controller talks to the cloud, only the
// node side touches the host, nothing in production imports the simulated
// cloud, and the binaries in the image carry no release tooling.
package arch

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/kuryr-dpdk/kuryr-dpdk"

// deps lists the packages pkgs import, directly or not (test files excluded).
func deps(t *testing.T, pkgs ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, p := range pkgs {
		// A package a later issue adds has no rule to break yet.
		if _, err := os.Stat(filepath.Join("../..", strings.TrimSuffix(p, "/..."))); os.IsNotExist(err) {
			continue
		}
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", p)
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

func TestCNIShimIsThin(t *testing.T) {
	shim := []string{"./cmd/kuryr-cni"}
	forbid(t, shim, "the shim forwards to the daemon and imports no Kubernetes client",
		"k8s.io/client-go", "sigs.k8s.io/controller-runtime", "github.com/gophercloud")
	for p, ds := range deps(t, shim...) {
		for _, d := range ds {
			if strings.HasPrefix(d, module+"/") && d != module+"/cmd/kuryr-cni" &&
				!strings.HasPrefix(d, module+"/internal/cniapi") && d != module+"/internal/version" {
				t.Errorf("%s imports %s: the shim may import only internal/cniapi and internal/version of this module", p, d)
			}
		}
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
