package ctl

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// installDirs makes a shim binary and empty CNI directories under a temp
// dir and returns options pointing at them.
func installDirs(t *testing.T) InstallCNIOptions {
	t.Helper()
	root := t.TempDir()
	o := DefaultInstallCNIOptions()
	o.Shim = filepath.Join(root, "image", "kuryr-cni")
	o.BinDir = filepath.Join(root, "host", "opt", "cni", "bin")
	o.ConfDir = filepath.Join(root, "host", "etc", "cni", "net.d")
	for _, d := range []string{filepath.Dir(o.Shim), o.BinDir, o.ConfDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(o.Shim, []byte("shim v1"), 0o700); err != nil {
		t.Fatal(err)
	}
	return o
}

func mustRead(t *testing.T, path string) (string, os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), st.Mode()
}

// onlyFiles fails when dir holds anything but names (no temporary files
// left behind).
func onlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}

func TestInstallCNIInstallsAndIsIdempotent(t *testing.T) {
	o := installDirs(t)
	done, err := InstallCNI(o)
	if err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(o.BinDir, "kuryr-cni")
	node := filepath.Join(o.BinDir, cniapi.NodeConfigName)
	conf := filepath.Join(o.ConfDir, "10-kuryr.conflist")
	if len(done) != 3 || done[0] != (Installed{shim, true}) || done[1] != (Installed{node, true}) || done[2] != (Installed{conf, true}) {
		t.Fatalf("first install: %+v", done)
	}
	nb, _ := mustRead(t, node)
	if nc, err := cniapi.LoadNodeConfig(o.BinDir); err != nil || nc.DaemonSocket != "/run/kuryr-dpdk/cni.sock" {
		t.Errorf("node-local file %q reads as %+v, %v", nb, nc, err)
	}
	if b, mode := mustRead(t, shim); b != "shim v1" || mode != 0o755 {
		t.Errorf("shim %q mode %v", b, mode)
	}
	b, mode := mustRead(t, conf)
	if mode != 0o644 {
		t.Errorf("conflist mode %v", mode)
	}
	list, err := libcni.NetworkConfFromBytes([]byte(b))
	if err != nil {
		t.Fatalf("installed conflist: %v", err)
	}
	if list.Name != "kuryr" || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "kuryr-cni" ||
		strings.Contains(string(list.Plugins[0].Bytes), "daemonSocket") {
		t.Errorf("installed conflist: %s", b)
	}

	// Again: nothing changes.
	done, err = InstallCNI(o)
	if err != nil {
		t.Fatal(err)
	}
	if done[0].Changed || done[1].Changed || done[2].Changed {
		t.Errorf("second install changed files: %+v", done)
	}

	// A new shim replaces the old one, mode included.
	if err := os.WriteFile(o.Shim, []byte("shim v2"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shim, 0o700); err != nil {
		t.Fatal(err)
	}
	done, err = InstallCNI(o)
	if err != nil {
		t.Fatal(err)
	}
	if !done[0].Changed || done[1].Changed || done[2].Changed {
		t.Errorf("install of a new shim: %+v", done)
	}
	if b, mode := mustRead(t, shim); b != "shim v2" || mode != 0o755 {
		t.Errorf("shim %q mode %v", b, mode)
	}
	onlyFiles(t, o.BinDir, "kuryr-cni", cniapi.NodeConfigName)
	onlyFiles(t, o.ConfDir, "10-kuryr.conflist")
}

func TestInstallCNIGivenConflist(t *testing.T) {
	o := installDirs(t)
	given := `{"cniVersion":"1.1.0","name":"mine","plugins":[{"type":"kuryr-cni","daemonSocket":"/x.sock"}]}`
	o.DaemonSocket = "/x.sock"
	o.Conflist = filepath.Join(t.TempDir(), "given.conflist")
	o.ConflistName = "05-mine.conflist"
	if err := os.WriteFile(o.Conflist, []byte(given), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallCNI(o); err != nil {
		t.Fatal(err)
	}
	if b, _ := mustRead(t, filepath.Join(o.ConfDir, "05-mine.conflist")); b != given {
		t.Errorf("installed %q, want the given file as it is", b)
	}
}

func TestInstallCNIRefusesBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(*InstallCNIOptions)
		want   string
	}{
		"no bin dir":      {func(o *InstallCNIOptions) { o.BinDir = "" }, "--cni-bin-dir: required"},
		"bad name":        {func(o *InstallCNIOptions) { o.ConflistName = "../10-kuryr.conf" }, "--conflist-name"},
		"no socket":       {func(o *InstallCNIOptions) { o.DaemonSocket = "" }, "--daemon-socket"},
		"relative socket": {func(o *InstallCNIOptions) { o.DaemonSocket = "run/cni.sock" }, "--daemon-socket"},
		"other socket in the conflist": {func(o *InstallCNIOptions) {
			o.Conflist = writeTemp(t, `{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"kuryr-cni","daemonSocket":"/other.sock"}]}`)
		}, "differs from --daemon-socket"},
		"missing shim":   {func(o *InstallCNIOptions) { o.Shim += ".none" }, "shim:"},
		"missing binDir": {func(o *InstallCNIOptions) { o.BinDir += "/none" }, "install "},
		"not a conflist": {func(o *InstallCNIOptions) { o.Conflist = writeTemp(t, `{"type":"kuryr-cni"}`) }, "not a network configuration list"},
		"not kuryr": {func(o *InstallCNIOptions) {
			o.Conflist = writeTemp(t, `{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"bridge"}]}`)
		}, "no plugin of type kuryr-cni"},
	} {
		t.Run(name, func(t *testing.T) {
			o := installDirs(t)
			tc.change(&o)
			_, err := InstallCNI(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			// Nothing half-done: the configuration only follows the binary.
			ents, err := os.ReadDir(o.ConfDir)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("list %s: %v", o.ConfDir, err)
			}
			if len(ents) != 0 {
				t.Errorf("conf dir has %d entries after a failure", len(ents))
			}
		})
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.conflist")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
