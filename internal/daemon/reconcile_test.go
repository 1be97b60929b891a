package daemon

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

// reconcilePod is one pod of TestStartupReconcile: its sandbox, netns and
// DPDK device.
type reconcilePod struct {
	name, sandbox, pci string
	netns              ns.NetNS
}

// TestStartupReconcile: three pods are plugged (eth0 MACVLAN, net1 DPDK)
// through libcni; with the daemon down, one pod is deleted from the API and
// another's network namespace vanishes (its sandbox is gone). When the
// daemon starts again, before it is ready, the attachments of those two are
// undone (devices back on virtio-pci with their netdevs, the deleted pod's
// eth0 removed, device-info files and checkpoints gone) and the live pod's
// are kept; the counter says so. The pod whose sandbox vanished still
// exists: its KuryrPod says its interfaces are no longer plugged (as after
// a DEL), while the live pod's still are.
func TestStartupReconcile(t *testing.T) {
	n := newNode(t)
	stop := n.startDaemon(30 * time.Second)
	pods := map[string]*reconcilePod{
		"live":   {name: "live", sandbox: "5a0d000000000000000000000000000a", pci: "0000:01:00.0", netns: netnstest.NewNS(t)},
		"gone":   {name: "gone", sandbox: "5a0d000000000000000000000000000b", pci: "0000:02:00.0", netns: netnstest.NewNS(t)},
		"vanish": {name: "vanish", sandbox: "5a0d000000000000000000000000000c", pci: "0000:03:00.0", netns: vanishingNS(t)},
	}
	for i, name := range []string{"live", "gone", "vanish"} {
		p := pods[name]
		mac := fmt.Sprintf("fa:16:3e:00:01:%02x", i)
		must(t, n.sim.AddVirtioNet(p.pci, fmt.Sprintf("fa:16:3e:00:02:%02x", i)))
		pod, _ := n.createPodMACs(name, v1alpha1.StateActive, mac, fmt.Sprintf("fa:16:3e:00:02:%02x", i))
		if _, err := n.cni.AddNetworkList(n.ctx, n.list, rtFor(pod, p.sandbox, p.netns.Path())); err != nil {
			t.Fatalf("ADD of pod %s: %v", name, err)
		}
		if drv := n.sim.Driver(p.pci); drv != "uio_pci_generic" {
			t.Fatalf("pod %s's device bound to %q after ADD", name, drv)
		}
	}
	stop()

	// While the daemon is down: pod "gone" is deleted, pod "vanish"'s
	// sandbox (its netns) is removed.
	gone := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: n.podName("gone"), Namespace: "default"}}
	must(t, n.c.Delete(n.ctx, gone, client.GracePeriodSeconds(0)))
	v := pods["vanish"].netns
	_ = v.Close()
	must(t, testutils.UnmountNS(v))

	n.startDaemon(30 * time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for n.daemon.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready after 30s: %v", n.daemon.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}

	for name, p := range pods {
		recs := n.records(p.sandbox)
		devInfo := binding.DeviceInfoPath(n.dir, "default/dataplane", p.sandbox, "net1")
		_, devInfoErr := os.Stat(devInfo)
		if name == "live" {
			if drv := n.sim.Driver(p.pci); drv != "uio_pci_generic" || len(recs) != 2 || devInfoErr != nil || !hasLink(t, p.netns, "eth0") {
				t.Errorf("live pod: device on %q, %d checkpoints, device-info %v, eth0 present %v; want all kept",
					drv, len(recs), devInfoErr, hasLink(t, p.netns, "eth0"))
			}
			continue
		}
		if drv := n.sim.Driver(p.pci); drv != "virtio-pci" || n.sim.Netdev(p.pci) == "" {
			t.Errorf("pod %s: device %s on %q (netdev %q); want it back on virtio-pci", name, p.pci, drv, n.sim.Netdev(p.pci))
		}
		if len(recs) != 0 || !os.IsNotExist(devInfoErr) {
			t.Errorf("pod %s: checkpoints %+v, device-info %v; want both removed", name, recs, devInfoErr)
		}
	}
	if hasLink(t, pods["gone"].netns, "eth0") {
		t.Error("the deleted pod's eth0 is still in its netns")
	}
	for name, want := range map[string]v1alpha1.InterfaceState{"live": v1alpha1.StatePlugged, "vanish": v1alpha1.StateActive} {
		for _, s := range n.kuryrPod(name).Status.Interfaces {
			if s.State != want {
				t.Errorf("pod %s: KuryrPod interface %s is %s (bound to %q), want %s", name, s.IfName, s.State, s.BoundDriver, want)
			}
		}
	}
	for outcome, want := range map[string]float64{reconcileKept: 2, reconcilePodGone: 2, reconcileNetnsGone: 2, reconcileFailed: 0} {
		if got := testutil.ToFloat64(n.daemon.metrics.reconciled.WithLabelValues(outcome)); got != want {
			t.Errorf("kuryr_daemon_startup_reconcile_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

// vanishingNS is a network namespace the test removes itself (the
// runtime's sandbox going away); it is removed at the end if still there.
func vanishingNS(t *testing.T) ns.NetNS {
	t.Helper()
	netnstest.RequireRoot(t)
	v, err := testutils.NewNS()
	must(t, err)
	t.Cleanup(func() {
		if gone, _ := binding.NetnsGone(v.Path()); !gone {
			_ = v.Close()
			_ = testutils.UnmountNS(v)
		}
	})
	return v
}

// records are the node's checkpoints of a sandbox.
func (n *node) records(sandbox string) []checkpoint.Record {
	n.t.Helper()
	s, err := checkpoint.New(n.ckptDir)
	must(n.t, err)
	all, err := s.List()
	must(n.t, err)
	var out []checkpoint.Record
	for _, r := range all {
		if r.ContainerID == sandbox {
			out = append(out, r)
		}
	}
	return out
}

func hasLink(t *testing.T, n ns.NetNS, name string) bool {
	t.Helper()
	found := false
	must(t, n.Do(func(ns.NetNS) error {
		_, err := netlink.LinkByName(name)
		found = err == nil
		return nil
	}))
	return found
}
