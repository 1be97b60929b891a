package vm

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// The end-to-end tests share one control plane and one build of the node
// binaries; TestMain stops the control plane.
var shared struct {
	apiOnce sync.Once
	api     *testenv.Env
	apiErr  error

	binOnce sync.Once
	binDir  string
	binErr  error
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	code := m.Run()
	if shared.api != nil {
		if err := shared.api.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "warning: stopping the test control plane: %v\n", err)
		}
	}
	if shared.binDir != "" {
		os.RemoveAll(shared.binDir)
	}
	os.Exit(code)
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, nadv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// requireAPIServer returns the shared kube-apiserver, skipping (failing
// with KURYR_TEST_VM=1) when its binaries are not built.
func requireAPIServer(t *testing.T) *testenv.Env {
	t.Helper()
	shared.apiOnce.Do(func() {
		shared.api, shared.apiErr = testenv.Start(testenv.Options{CRDDirectoryPaths: []string{"../../deploy/crds", "../../deploy/third-party"}})
	})
	if errors.Is(shared.apiErr, testenv.ErrMissingBinaries) {
		qemu.SkipOrFail(t, shared.apiErr.Error())
	}
	if shared.apiErr != nil {
		t.Fatal(shared.apiErr)
	}
	return shared.api
}

// nodeBinaries builds static kuryr-daemon and kuryr-cni for the guest
// (CGO_ENABLED=0: the guest has no Go toolchain and a minimal libc set).
func nodeBinaries(t *testing.T) string {
	t.Helper()
	shared.binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kuryr-vm-bin-")
		if err != nil {
			shared.binErr = err
			return
		}
		shared.binDir = dir
		start := time.Now()
		cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "./cmd/kuryr-daemon", "./cmd/kuryr-cni")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			shared.binErr = fmt.Errorf("build the node binaries: %v\n%s", err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "built static kuryr-daemon and kuryr-cni in %v\n", time.Since(start).Round(time.Millisecond))
	})
	if shared.binErr != nil {
		t.Fatal(shared.binErr)
	}
	return shared.binDir
}

// guestAPIAddr is where the guest reaches the host's API server: QEMU user
// networking forwards it (guestfwd) to the API server's loopback port.
const guestAPIAddr = "10.0.2.100:6443"

// guestKubeconfig writes the kubeconfig the guest's daemon uses: the API
// server at guestAPIAddr, its certificate checked against its CA for the
// name localhost (it is issued for 127.0.0.1 and localhost), and the admin
// client credentials of the test control plane.
func guestKubeconfig(env *testenv.Env) ([]byte, string, error) {
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		return nil, "", fmt.Errorf("api server address %q: %w", env.Config.Host, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{
		Server: "https://" + guestAPIAddr, CertificateAuthorityData: env.Config.CAData, TLSServerName: "localhost",
	}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: env.Config.CertData, ClientKeyData: env.Config.KeyData, Token: env.Config.BearerToken,
	}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	cfg.CurrentContext = "test"
	b, err := clientcmd.Write(*cfg)
	return b, u.Host, err
}

// guestFiles are the per-run additions to the guest: the static binaries,
// the kubeconfig, and a boot hook that loads the DPDK drivers (what a
// node's /etc/modules-load.d does) and starts the daemon (what its
// DaemonSet does).
func guestFiles(t *testing.T, binDir, node string, kubeconfig []byte) string {
	t.Helper()
	daemon, err := qemu.HostFile("usr/bin/kuryr-daemon", filepath.Join(binDir, "kuryr-daemon"))
	if err != nil {
		t.Fatal(err)
	}
	shim, err := qemu.HostFile("opt/cni/bin/kuryr-cni", filepath.Join(binDir, "kuryr-cni"))
	if err != nil {
		t.Fatal(err)
	}
	start := fmt.Sprintf(`#!/bin/sh
# Starts kuryr-daemon in the background (again, after a kill).
mkdir -p /var/lib/kuryr-dpdk /var/log
/usr/bin/kuryr-daemon --node-name=%s --kubeconfig=/etc/kuryr/kubeconfig --primary=false \
	--metrics-bind-address=127.0.0.1:9090 --metrics-secure=false --health-probe-bind-address=0 --device-timeout=60s -v=2 \
	</dev/null >>/var/log/kuryr-daemon.log 2>&1 &
echo $! >/run/kuryr-daemon.pid
`, node)
	hook := `#!/bin/sh
# Node prerequisites: the DPDK drivers. vfio_pci names vfio_iommu_type1 only
# as a soft dependency, which busybox's modprobe ignores.
for m in uio_pci_generic vfio-pci vfio_iommu_type1; do modprobe $m || echo "modprobe $m failed" >/dev/console; done
/etc/kuryr/start-daemon
`
	path := filepath.Join(t.TempDir(), "kuryr-node.cpio")
	files := []qemu.CPIOFile{daemon, shim,
		{Name: "etc/kuryr/kubeconfig", Mode: 0o600, Data: kubeconfig},
		{Name: "etc/kuryr/start-daemon", Mode: 0o755, Data: []byte(start)},
		{Name: "etc/kuryr/init.d/50-kuryr-node", Mode: 0o755, Data: []byte(hook)},
	}
	if err := qemu.WriteCPIOFile(path, files); err != nil {
		t.Fatal(err)
	}
	return path
}
