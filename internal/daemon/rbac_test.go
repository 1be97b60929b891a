package daemon

import (
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestRunsWithDeployedRBAC runs the daemon as the ServiceAccount of
// deploy/kuryr-dpdk through ADD and DEL: its ClusterRole grants every call
// the node side makes (informers, status, network-status, the node).
func TestRunsWithDeployedRBAC(t *testing.T) {
	n := newNode(t)
	if _, err := testenv.Apply(n.ctx, env.Config, "../../deploy/kuryr-dpdk/rbac.yaml"); err != nil {
		t.Fatal(err)
	}
	sa, err := env.ServiceAccountConfig("kuryr-dpdk", "kuryr-daemon")
	must(t, err)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemonAs(sa, 30*time.Second, true)
	n.createPod("rbac", v1alpha1.StateActive)
	if _, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt()); err != nil {
		t.Fatalf("ADD as the daemon's ServiceAccount: %v", err)
	}
	if st := findStatus(n.kuryrPod("rbac"), "net1"); st.State != v1alpha1.StatePlugged {
		t.Fatalf("net1 %+v, want Plugged", st)
	}
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
	if st := findStatus(n.kuryrPod("rbac"), "net1"); st.State != v1alpha1.StateActive {
		t.Fatalf("net1 %+v after DEL, want Active", st)
	}
}
