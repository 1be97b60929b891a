package manager

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestManagerFlags: the flags and their defaults, and a bad kubeconfig
// failing New with the client's error.
func TestManagerFlags(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var m Flags
	m.AddFlags(fs, Defaults{QPS: 20, Burst: 40, MetricsAddr: ":9090", ProbeAddr: ":9091"})
	for name, want := range map[string]string{"kube-api-qps": "20", "kube-api-burst": "40", "kubeconfig": "", "kube-api-compression": "false",
		"metrics-bind-address": ":9090", "metrics-secure": "true", "health-probe-bind-address": ":9091"} {
		if f := fs.Lookup(name); f == nil || f.DefValue != want {
			t.Errorf("--%s: %+v, want default %q", name, f, want)
		}
	}
	missing := filepath.Join(t.TempDir(), "kubeconfig")
	if err := fs.Parse([]string{"--kubeconfig=" + missing, "--metrics-bind-address=0", "--kube-api-qps=7"}); err != nil {
		t.Fatal(err)
	}
	if m.Kube.Kubeconfig != missing || m.MetricsAddr != "0" || m.ProbeAddr != ":9091" || m.Kube.QPS != 7 || m.Kube.Burst != 40 {
		t.Errorf("parsed %+v", m)
	}
	_, err := m.New(ctrl.Options{})
	if err == nil || !strings.Contains(err.Error(), "kubernetes client configuration") {
		t.Errorf("New with a missing kubeconfig: %v", err)
	}

	// A kubeconfig that names a server is enough: the manager connects
	// when it starts.
	kc := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
	if err := os.WriteFile(missing, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	mgr, err := m.New(ctrl.Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if !mgr.GetScheme().Recognizes(v1alpha1.GroupVersion.WithKind("KuryrPod")) {
		t.Error("the manager's scheme lacks KuryrPod")
	}
	if err := AddProbes(mgr, func(*http.Request) error { return nil }); err != nil {
		t.Errorf("AddProbes: %v", err)
	}
}

// TestPprofAddressLoopbackOnly: --pprof-bind-address is off by default,
// and only a loopback IP address with a port is accepted (the error names
// the flag).
func TestPprofAddressLoopbackOnly(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var m Flags
	m.AddFlags(fs, Defaults{})
	if f := fs.Lookup("pprof-bind-address"); f == nil || f.DefValue != "" {
		t.Fatalf("--pprof-bind-address: %+v, want default off", f)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("default: %v", err)
	}
	for addr, ok := range map[string]bool{
		"127.0.0.1:6060": true, "[::1]:6060": true, "127.0.0.2:0": true,
		":6060": false, "0.0.0.0:6060": false, "10.0.0.1:6060": false, "[::]:6060": false,
		"localhost:6060": false, "127.0.0.1": false, "127.0.0.1:": false,
	} {
		m.PprofAddr = addr
		err := m.Validate()
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "--pprof-bind-address")) {
			t.Errorf("%q: %v, want accepted %v", addr, err, ok)
		}
	}
}
