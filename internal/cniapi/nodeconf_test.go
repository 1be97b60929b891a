package cniapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNodeConfig(t *testing.T) {
	dir := t.TempDir()
	c, err := LoadNodeConfig(dir)
	if err != nil || c.DaemonSocket != DefaultSocketPath {
		t.Fatalf("without the file: %+v, %v; want the default socket", c, err)
	}
	b, merr := MarshalNodeConfig(NodeConfig{DaemonSocket: "/run/other/cni.sock"})
	if merr != nil {
		t.Fatal(merr)
	}
	if err := os.WriteFile(filepath.Join(dir, NodeConfigName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = LoadNodeConfig(dir); err != nil || c.DaemonSocket != "/run/other/cni.sock" {
		t.Fatalf("LoadNodeConfig = %+v, %v", c, err)
	}
	for name, in := range map[string]string{
		"relative":      `{"daemonSocket":"cni.sock"}`,
		"unclean":       `{"daemonSocket":"/run/../cni.sock"}`,
		"long":          `{"daemonSocket":"/` + strings.Repeat("s", 120) + `"}`,
		"missing":       `{}`,
		"unknown field": `{"daemonSocket":"/run/x.sock","other":1}`,
		"trailing":      `{"daemonSocket":"/run/x.sock"}{}`,
		"not json":      `/run/x.sock`,
	} {
		if _, err := ParseNodeConfig([]byte(in)); err == nil {
			t.Errorf("%s: %s accepted", name, in)
		}
	}
}

// FuzzParseNodeConfig: the node-local file never panics the shim, and
// what it accepts is a socket path the client can dial (absolute, clean,
// within sun_path) that survives MarshalNodeConfig unchanged. Run longer
// with go test -run '^$' -fuzz FuzzParseNodeConfig ./internal/cniapi/
func FuzzParseNodeConfig(f *testing.F) {
	for _, s := range []string{
		`{"daemonSocket":"/run/kuryr-dpdk/cni.sock"}`, `{"daemonSocket":"/run/kuryr-dpdk/cni.sock"}` + "\n",
		`{"daemonSocket":""}`, `{"daemonSocket":"/a/../b"}`, `{"daemonSocket":"/x\u0000"}`, `null`, `[]`, `{"daemonSocket":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseNodeConfig(data)
		if err != nil {
			return
		}
		p := c.DaemonSocket
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || len(p) > maxSocketPath || strings.ContainsRune(p, 0) {
			t.Fatalf("accepted socket %q", p)
		}
		b, err := MarshalNodeConfig(c)
		if err != nil {
			t.Fatalf("MarshalNodeConfig of an accepted %+v: %v", c, err)
		}
		if again, err := ParseNodeConfig(b); err != nil || again != c {
			t.Fatalf("round trip %+v → %s → %+v, %v", c, b, again, err)
		}
	})
}
