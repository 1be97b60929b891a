package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

// TestEveryDeployedRuleIsUsed: the controller's ClusterRole in
// deploy/kuryr-dpdk/rbac.yaml grants nothing the controller does not call.
// With all of it, a run through every kind of call (controllerCalls) is
// refused nothing; with any one verb of any rule removed, the same run
// makes a call the API server refuses (403). A rule no call needs fails
// here, as does a call the role lacks.
//
// Informers take their first list as a watch stream (client-go's
// WatchListClient), which RBAC authorizes as watch, and fall back to a
// LIST whenever the stream fails: the test turns the stream off so that
// the LIST they need then is made, and its verb proven.
func TestEveryDeployedRuleIsUsed(t *testing.T) {
	perms, err := testenv.ClusterRolePermissions("../../deploy/kuryr-dpdk/rbac.yaml", "kuryr-controller")
	must(t, err)
	if len(perms) < 10 {
		t.Fatalf("only %d permissions read: %v", len(perms), perms)
	}
	env.EveryPermissionUsed(t, perms, true, func(t *testing.T, ctx context.Context, cfg *rest.Config, _ bool) error {
		f := newFixture(t, 2)
		f.ownNamespace = true
		return f.controllerCalls(ctx, cfg)
	})
}

// controllerCalls runs the controller as cfg (pools on, nested-dpdk ones
// too; no leader election: its Role is not the ClusterRole's; its
// informers limited to f's namespace, so that runs go side by side)
// through every kind of call it makes: the cluster's UID, informers of
// pods, nodes, NADs, KuryrPods, KuryrNodes and ResourceClaims (the DPDK
// pools' claims), tenant policies and namespaces (a policy selects the
// pod's namespace), a pod's finalizer, a KuryrPod created, updated (a NAD
// that came late), its status, its finalizer and its deletion, a KuryrNode
// created and its status, a KuryrNode made without an owner patched to its
// Node's (f has two nodes: the second's pod finds one so), and an Event
// recorded twice (created, then patched). It stops early when ctx ends.
func (f *fixture) controllerCalls(ctx context.Context, cfg *rest.Config) error {
	f.opts.Pools.NestedVLAN = PoolSize{Min: 1, Max: 2, Batch: 2}
	f.opts.Pools.NestedDPDK = PoolSize{Min: 1, Max: 1, Batch: 1}
	f.standardNADs()
	second := f.ns + "-node-1"
	if err := f.c.Create(ctx, &v1alpha1.KuryrNode{ObjectMeta: metav1.ObjectMeta{Name: second}}); err != nil {
		return err
	}
	if _, err := f.runController(cfg, false); err != nil {
		return err
	}
	node := f.ns + "-node-0"
	f.createPod("waiting", node, "late")
	// A NAD without a subnet: each change of it plans the pod again, to
	// the same Event about the same objects (their resource versions
	// unchanged), which the recorder counts in a series: a patch.
	f.createNAD("late", `{"cniVersion":"1.0.0","name":"late","type":"kuryr-cni","driver":"nested-vlan"}`, nil)
	nad := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "late"}}
	if err := waitFor(ctx, 20*time.Second, "the InvalidNetworkRequest Event recorded as a series", func() (bool, string) {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"touched":"%d"}}}`, time.Now().UnixNano())
		if err := f.c.Patch(ctx, nad, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			return false, err.Error()
		}
		var list eventsv1.EventList
		if err := f.c.List(ctx, &list, client.InNamespace(f.ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Name == "waiting" && e.Series != nil {
				return true, ""
			}
			seen = append(seen, e.Reason)
		}
		return false, fmt.Sprintf("Events %v", seen)
	}); err != nil {
		return err
	}
	nad.Spec.Config = fmt.Sprintf(`{"cniVersion":"1.0.0","name":"late","type":"kuryr-cni","driver":"nested-vlan","subnetId":%q,"securityGroups":[%q]}`, f.mgmtNet.ID, f.sg)
	if err := f.c.Update(ctx, nad); err != nil {
		return err
	}
	if _, err := f.readyWithin(ctx, "waiting"); err != nil {
		return err
	}
	// A tenant policy selecting this namespace (and allowing everything):
	// checking a pod against it reads the pod's namespace (an informer of
	// namespaces).
	policy := tenantPolicy(f.ns+"-allow-all", v1alpha1.KuryrTenantPolicySpec{Namespaces: []string{f.ns},
		AllowRequestedMAC: true, AllowRequestedIPs: true, AllowVNFOptions: true})
	if err := f.c.Create(ctx, &policy); err != nil {
		return err
	}
	defer func() { _ = f.c.Delete(context.Background(), &policy) }()
	f.createPod("first", node, "mgmt,dataplane")
	if _, err := f.readyWithin(ctx, "first"); err != nil {
		return err
	}
	// waitKuryrNode waits until name's KuryrNode is as ok says.
	waitKuryrNode := func(name, what string, ok func(kn *v1alpha1.KuryrNode) bool) error {
		return waitFor(ctx, 20*time.Second, what, func() (bool, string) {
			var kn v1alpha1.KuryrNode
			if err := f.c.Get(ctx, types.NamespacedName{Name: name}, &kn); err != nil {
				return false, err.Error()
			}
			return ok(&kn), fmt.Sprintf("owners %+v, status %+v", kn.OwnerReferences, kn.Status)
		})
	}
	if err := waitKuryrNode(node, "the pool in the KuryrNode", func(kn *v1alpha1.KuryrNode) bool { return len(kn.Status.Pools) > 0 }); err != nil {
		return err
	}
	f.createPod("second", second, "")
	if _, err := f.readyWithin(ctx, "second"); err != nil {
		return err
	}
	if err := waitKuryrNode(second, "the second node's KuryrNode owned by its Node", func(kn *v1alpha1.KuryrNode) bool {
		return len(kn.OwnerReferences) == 1
	}); err != nil {
		return err
	}
	for _, name := range []string{"first", "waiting", "second"} {
		f.deletePod(name)
		if err := f.goneWithin(ctx, name); err != nil {
			return err
		}
	}
	return nil
}
