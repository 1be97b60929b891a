package imagebuild

import (
	"os"
	"testing"
)

// The demo image holds Debian's busybox-static and a link to it per applet,
// among them the shell and ip its users exec (hack/install-deps.sh
// installs busybox-static; make test runs it first).
func TestDemoSpecHasAShellAndIP(t *testing.T) {
	if _, err := os.Stat(Busybox); err != nil {
		t.Fatalf("%s: %v (install Debian's busybox-static: hack/install-deps.sh)", Busybox, err)
	}
	spec, err := DemoSpec("example/demo:dev")
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]Entry{}
	for _, e := range spec.Entries {
		entries[e.Path] = e
	}
	if e := entries[Busybox]; e.Source != Busybox || e.Mode != 0o755 {
		t.Errorf("%s entry %+v, want the file from this machine, mode 0755", Busybox, e)
	}
	for _, applet := range []string{"/bin/sh", "/sbin/ip", "/bin/cat", "/bin/sleep"} {
		if e := entries[applet]; e.Link != Busybox {
			t.Errorf("%s entry %+v, want a link to %s", applet, e, Busybox)
		}
	}
	if _, err := spec.normalize(); err != nil {
		t.Errorf("the spec does not build: %v", err)
	}
}
