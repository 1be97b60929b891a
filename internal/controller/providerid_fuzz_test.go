package controller

import (
	"strings"
	"testing"
)

// FuzzServerIDFromProviderID: a node's spec.providerID is parsed without
// panicking into a server ID that has no "/" and is the providerID's tail;
// anything not openstack:// gives none; openstack:///<id> gives <id>.
// Run longer with
// go test -run '^$' -fuzz FuzzServerIDFromProviderID -parallel 1 ./internal/controller/
func FuzzServerIDFromProviderID(f *testing.F) {
	for _, s := range []string{"openstack:///9a3e0d57-0000-4000-8000-000000000001", "openstack://RegionOne/9a3e",
		"openstack://", "openstack:///", "aws:///i-123", "openstack:///a/b", "OPENSTACK:///x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		id := serverIDFromProviderID(p)
		if strings.Contains(id, "/") || !strings.HasSuffix(p, id) {
			t.Fatalf("%q gave server ID %q", p, id)
		}
		if !strings.HasPrefix(p, "openstack://") && id != "" {
			t.Fatalf("%q is no OpenStack providerID but gave %q", p, id)
		}
		if rest, ok := strings.CutPrefix(p, "openstack:///"); ok && !strings.Contains(rest, "/") && id != rest {
			t.Fatalf("%q gave %q, want %q", p, id, rest)
		}
	})
}
