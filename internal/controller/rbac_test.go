package controller

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
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

// TestPoolsRunWithDeployedRBAC: with pools on, the deployed ServiceAccount
// (leader-elected) fills a pool, records it in the KuryrNode, gives a pod a
// pooled port and takes it back.
func TestPoolsRunWithDeployedRBAC(t *testing.T) {
	f := newFixture(t, 1)
	if _, err := testenv.Apply(f.ctx, env.Config, "../../deploy/kuryr-dpdk/rbac.yaml"); err != nil {
		t.Fatal(err)
	}
	sa, err := env.ServiceAccountConfig("kuryr-dpdk", "kuryr-controller")
	must(t, err)
	f.opts.Pools.NestedVLAN = PoolSize{Min: 1, Max: 2, Batch: 2}
	f.startControllerAs(sa, true)
	node := f.ns + "-node-0"
	f.createPod("first", node, "")
	f.waitReady("first")
	f.eventually(20*time.Second, "the pool in the KuryrNode", func() (bool, string) {
		var kn v1alpha1.KuryrNode
		if err := f.c.Get(f.ctx, types.NamespacedName{Name: node}, &kn); err != nil {
			return false, err.Error()
		}
		return len(kn.Status.Pools) == 1 && kn.Status.Pools[0].Ready == 2, fmt.Sprintf("%+v", kn.Status.Pools)
	})
	f.createPod("pooled", node, "")
	id := f.waitReady("pooled").Status.Interfaces[0].PortID
	if _, ok := f.poolPorts()[id]; !ok {
		t.Fatalf("pod got port %s, not a pooled one", id)
	}
	f.deletePod("pooled")
	f.waitGone("pooled")
	if p, ok := f.sim.Port(id); !ok || tagValue(p.Tags, tagPrefixPod) != "" {
		t.Fatalf("port %s after release: present %v, tags %v; want it back in the pool", id, ok, p.Tags)
	}
}
