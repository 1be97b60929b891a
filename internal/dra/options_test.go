package dra

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"
)

// TestOptionsValidate: the defaults are valid; each bad flag is named.
func TestOptionsValidate(t *testing.T) {
	o := Defaults()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--dra=maybe", "--dra-cdi-dir=cdi", "--dra-owner-timeout=1ms", "--dra-resync=10ms"}); err != nil {
		t.Fatal(err)
	}
	err := o.Validate()
	for _, want := range []string{"--dra:", "--dra-cdi-dir:", "--dra-owner-timeout:", "--dra-resync:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to name %s", err, want)
		}
	}
}

// TestOptionsOn: auto is on exactly when the kubelet's plugin registry
// directory exists.
func TestOptionsOn(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		enabled, registry string
		want              bool
	}{
		{"auto", dir, true},
		{"auto", filepath.Join(dir, "missing"), false},
		{"true", filepath.Join(dir, "missing"), true},
		{"false", dir, false},
	} {
		o := Options{Enabled: tc.enabled, RegistrarDir: tc.registry}
		if got := o.On(); got != tc.want {
			t.Errorf("--dra=%s with registry %s: On() = %v, want %v", tc.enabled, tc.registry, got, tc.want)
		}
	}
}
