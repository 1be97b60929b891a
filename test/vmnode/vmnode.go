// Package vmnode runs a real Kubernetes node in the QEMU node VM for the
// tests of test/vmpod: the guest of hack/vm/build-guest.sh runs containerd
// v2 (with Debian's runc) and the kubelet v1.37.2 from the cache of
// hack/build-node-bins.sh, registered with a control plane on the host
// (test/aio's: etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager) through the management NIC's restricted
// forward; kuryr-daemon runs in it as the DaemonSet's pod. See
// docs/node-vm.md.
//
// Without a built guest or the binaries a test skips loudly; with
// KURYR_TEST_VM=1 it fails instead.
package vmnode

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// NodeName is the guest's hostname and its Node's name.
const NodeName = "kuryr-node"

// guestAPIIP and guestAPIAddr are where the guest reaches the host's API
// server: QEMU user networking forwards guestAPIAddr (guestfwd) to the API
// server's loopback port. The serving certificate names guestAPIIP.
const (
	guestAPIIP   = "10.0.2.100"
	guestAPIAddr = guestAPIIP + ":6443"
)

// The tests of a package share one control plane; Main stops it.
var shared struct {
	once sync.Once
	cp   *aio.ControlPlane
	err  error
	miss bool // err says what to build

	imageOnce sync.Once
	image     string // the kuryr-dpdk image (kuryrImage)
	imageErr  error

	tmpDirs []string // removed by Main
}

// Main runs a test package's tests (TestMain: os.Exit(vmnode.Main(m)))
// and then stops the shared control plane and removes the kuryr binaries.
func Main(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	code := m.Run()
	if shared.cp != nil {
		if err := shared.cp.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "warning: stopping the control plane: %v\n", err)
		}
	}
	for _, d := range shared.tmpDirs {
		os.RemoveAll(d)
	}
	return code
}

// RequireControlPlane returns the shared control plane, skipping (failing
// with KURYR_TEST_VM=1) when its binaries are not built.
func RequireControlPlane(t *testing.T) *aio.ControlPlane {
	t.Helper()
	shared.once.Do(func() {
		if _, err := os.Stat(testenv.AssetsDir() + "/kube-scheduler"); err != nil {
			shared.err = fmt.Errorf("no control plane in %s: build it with hack/build-kube-bins.sh: %w", testenv.AssetsDir(), err)
			shared.miss = true
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared.cp, shared.err = aio.StartControlPlane(ctx, aio.ControlPlaneOptions{
			ServingIPs: []net.IP{net.ParseIP(guestAPIIP)}, Nodes: []string{NodeName}})
		if shared.err == nil {
			fmt.Fprintf(os.Stderr, "control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager) up in %v\n",
				time.Since(start).Round(time.Millisecond))
		}
	})
	if shared.miss {
		qemu.SkipOrFail(t, shared.err.Error())
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cp
}
