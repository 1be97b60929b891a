// Package e2e holds the end-to-end tests: kuryr-controller (the
// Deployment of deploy/overlays/all-in-one) and kuryr-daemon (its
// DaemonSet) run from the kuryr-dpdk image on the all-in-one (test/aio): a
// real kube-apiserver, the simulated cloud, and three node VMs as network
// namespaces with simulated PCI hardware, each running a real containerd
// and kubelet that call kuryr-cni for every pod. They need root and the
// binaries of hack/build-node-bins.sh.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// env is the package's environment: three real nodes, started once by
// TestMain and shared by the tests (each in its own namespace).
var env *aio.Env

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 || !testenv.HaveNodeBins() {
		return m.Run() // every test skips, or fails under KURYR_TEST_STRICT=1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	e, err := aio.Start(ctx, aio.Options{Nodes: 3, RealNodes: true, Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start the all-in-one environment: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: environment with 3 real nodes up in %.1f s\n", time.Since(start).Seconds())
	env = e
	code := m.Run()
	if code != 0 || os.Getenv("KURYR_E2E_KEEP_LOGS") != "" {
		dst := filepath.Join(os.TempDir(), "kuryr-e2e-logs-"+e.ID)
		if err := e.SaveLogs(dst); err == nil {
			fmt.Fprintf(os.Stderr, "the processes' logs are kept in %s\n", dst)
		}
	}
	if err := e.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: tear down the all-in-one environment: %v\n", err)
		return 1
	}
	if _, err := os.Stat(e.StateDir); !os.IsNotExist(err) {
		fmt.Fprintf(os.Stderr, "FAIL: %s left after teardown (%v)\n", e.StateDir, err)
		return 1
	}
	return code
}
