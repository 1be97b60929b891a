package v1alpha1_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
)

// TestDriverEnumIsNetconfs: the CRD's enum of drivers (the kubebuilder
// marker on the Driver type, and the generated CRD that the API server
// enforces) lists exactly the driver names of internal/netconf, in its
// order, and Valid agrees.
func TestDriverEnumIsNetconfs(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("kuryrpod_types.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^// \+kubebuilder:validation:Enum=(.*)\ntype Driver string$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("no Enum marker right above `type Driver string` in kuryrpod_types.go")
	}
	if got := strings.Split(string(m[1]), ";"); !slices.Equal(got, netconf.Drivers()) {
		t.Errorf("Enum marker lists %v, netconf.Drivers() = %v", got, netconf.Drivers())
	}

	crd, err := os.ReadFile("../../deploy/crds/kuryr-dpdk.io_kuryrpods.yaml")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, vals := range yamlEnums(string(crd)) {
		if !slices.Contains(vals, netconf.DriverNestedVLAN) {
			continue
		}
		found++
		if !slices.Equal(vals, netconf.Drivers()) {
			t.Errorf("generated CRD enum %v, netconf.Drivers() = %v (run make generate)", vals, netconf.Drivers())
		}
	}
	if found != 2 { // spec.interfaces[].driver and status.interfaces[].driver
		t.Errorf("found %d driver enums in the generated CRD, want 2", found)
	}

	for _, d := range netconf.Drivers() {
		if !v1alpha1.Driver(d).Valid() {
			t.Errorf("Driver(%q).Valid() = false", d)
		}
	}
	if v1alpha1.Driver("nested-sriov").Valid() {
		t.Error(`Driver("nested-sriov").Valid() = true`)
	}
}

// yamlEnums returns the values of every "enum:" list in a CRD's YAML.
func yamlEnums(doc string) [][]string {
	var out [][]string
	var cur []string
	in := false
	for _, line := range strings.Split(doc, "\n") {
		item, isItem := strings.CutPrefix(strings.TrimSpace(line), "- ")
		switch {
		case strings.TrimSpace(line) == "enum:":
			in, cur = true, nil
		case in && isItem:
			cur = append(cur, strings.Trim(item, `"`))
		case in:
			out, in = append(out, cur), false
		}
	}
	return out
}
