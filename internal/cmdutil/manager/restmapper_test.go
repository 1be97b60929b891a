package manager

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestRESTMapperMapsOwnKindsWithoutTheAPIServer: with no API server to
// ask (nothing listens at the configured address), RESTMapper maps every
// kind whose CRD deploy/crds holds to that CRD's resource and scope, maps
// the built-in kinds the binaries use (BuiltinKinds), and fails for any
// other kind, which it must discover.
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
	for gvk := range BuiltinKinds {
		if _, err := m.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			t.Errorf("%s: not mapped without the API server: %v", gvk, err)
		}
	}
	if _, err := m.RESTMapping(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "v1"); err == nil {
		t.Error("Deployment, a kind the binaries do not use, mapped with no API server to discover it from")
	}
}

// TestBuiltinKindsAsTheAPIServerSays: every kind RESTMapper maps without
// the API server has the resource and scope the real kube-apiserver's
// discovery gives it (the NetworkAttachmentDefinition from its CRD, which
// the test environment installs).
func TestBuiltinKindsAsTheAPIServerSays(t *testing.T) {
	t.Parallel()
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	discovered, err := apiutil.NewDynamicRESTMapper(env.Config, hc)
	if err != nil {
		t.Fatal(err)
	}
	static, err := RESTMapper(&rest.Config{Host: "https://127.0.0.1:1"}, hc)
	if err != nil {
		t.Fatal(err)
	}
	for gvk := range BuiltinKinds {
		want, err := discovered.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s: the API server does not know it: %v", gvk, err)
			continue
		}
		got, err := static.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s: not mapped without the API server: %v", gvk, err)
			continue
		}
		if got.Resource != want.Resource || got.Scope.Name() != want.Scope.Name() {
			t.Errorf("%s: mapped to %s (%s) without the API server; the API server says %s (%s)",
				gvk, got.Resource, got.Scope.Name(), want.Resource, want.Scope.Name())
		}
	}
}
