package manager

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestRESTMapperMapsOwnKindsWithoutTheAPIServer: with no API server to
// ask (nothing listens at the configured address), RESTMapper maps every
// kind whose CRD deploy/crds holds to that CRD's resource and scope, and
// fails for a built-in kind, which it must discover.
func TestRESTMapperMapsOwnKindsWithoutTheAPIServer(t *testing.T) {
	t.Parallel()
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := RESTMapper(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../../../deploy/crds/" + v1alpha1.GroupVersion.Group + "_*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("CRDs in deploy/crds: %v, %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd struct {
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind   string `json:"kind"`
					Plural string `json:"plural"`
				} `json:"names"`
				Scope string `json:"scope"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		want := meta.RESTScopeNameRoot
		if crd.Spec.Scope == "Namespaced" {
			want = meta.RESTScopeNameNamespace
		}
		gk := schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}
		mapping, err := m.RESTMapping(gk, v1alpha1.GroupVersion.Version)
		switch {
		case err != nil:
			t.Errorf("%s (%s): not mapped without the API server: %v", gk, f, err)
		case mapping.Resource.Resource != crd.Spec.Names.Plural || mapping.Scope.Name() != want:
			t.Errorf("%s: mapped to %s, scope %s; %s says %s, %s", gk, mapping.Resource.Resource, mapping.Scope.Name(), f, crd.Spec.Names.Plural, want)
		}
	}
	if _, err := m.RESTMapping(schema.GroupKind{Kind: "Pod"}, "v1"); err == nil {
		t.Error("Pod mapped with no API server to discover it from")
	}
}
