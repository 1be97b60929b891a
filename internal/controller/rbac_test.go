package controller

import (
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestRunsWithDeployedRBAC runs the controller as the ServiceAccount of
// deploy/kuryr-dpdk (with leader election, as deployed) through a pod's whole
// life: the ClusterRole grants every call the code makes.
func TestRunsWithDeployedRBAC(t *testing.T) {
	f := newFixture(t, 1)
	if _, err := testenv.Apply(f.ctx, env.Config, "../../deploy/kuryr-dpdk/rbac.yaml"); err != nil {
		t.Fatal(err)
	}
	sa, err := env.ServiceAccountConfig("kuryr-dpdk", "kuryr-controller")
	must(t, err)
	f.standardNADs()
	f.startControllerAs(sa, true)
	node := f.ns + "-node-0"
	f.createPod("rbac", node, "mgmt,dataplane")
	f.waitReady("rbac")
	f.deletePod("rbac")
	f.waitGone("rbac")
	if left := f.leftovers(); left != "" {
		t.Fatalf("after delete the cloud still holds: %s", left)
	}
}
