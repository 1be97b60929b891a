// Package e2e holds the end-to-end tests: kuryr-controller, one kuryr-daemon
// per node and the kuryr-cni shim, run as processes against the all-in-one
// environment (test/aio): a real kube-apiserver, the simulated cloud, and
// node VMs as network namespaces with simulated PCI hardware. They need root.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// env is the package's environment: three nodes, started once by TestMain.
var env *aio.Env

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // every test skips, or fails under KURYR_TEST_STRICT=1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := aio.Start(ctx, aio.Options{Nodes: 3, Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start the all-in-one environment: %v\n", err)
		return 1
	}
	env = e
	code := m.Run()
	if code != 0 {
		dst := filepath.Join(os.TempDir(), "kuryr-e2e-logs-"+e.ID)
		if err := e.SaveLogs(dst); err == nil {
			fmt.Fprintf(os.Stderr, "the processes' logs are kept in %s\n", dst)
		}
	}
	if err := e.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: tear down the all-in-one environment: %v\n", err)
		return 1
	}
	return code
}
