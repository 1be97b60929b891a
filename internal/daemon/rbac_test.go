package daemon

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestRunsWithDeployedRBAC runs the daemon as the ServiceAccount of
// deploy/kuryr-dpdk, with a token bound to a pod on its node as the kubelet
// gives it, through ADD and DEL in primary mode, and an ADD refused because
// the node's KuryrNode does not list the pod's DPDK port (the daemon reads
// the KuryrNode from the API server to confirm it): its ClusterRole grants
// every call the node side makes (informers, status, network-status, the
// node and its capability labels, its KuryrNode), and the node-scoping
// admission policy lets each through; the API server refuses none.
func TestRunsWithDeployedRBAC(t *testing.T) {
	n := newNode(t)
	if _, err := testenv.Apply(n.ctx, env.Config, "../../deploy/kuryr-dpdk/rbac.yaml", "../../deploy/kuryr-dpdk/admission.yaml"); err != nil {
		t.Fatal(err)
	}
	sa, err := env.NodeBoundServiceAccountConfig(n.ctx, "kuryr-dpdk", "kuryr-daemon", "kuryr-daemon-"+n.name, n.name)
	must(t, err)
	rec := testenv.NewRefusals()
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemonAs(rec.Wrap(sa), 30*time.Second, true)
	n.createPod("rbac", v1alpha1.StateActive)
	if _, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt()); err != nil {
		t.Fatalf("ADD as the daemon's ServiceAccount: %v", err)
	}
	if st := findStatus(n.kuryrPod("rbac"), "net1"); st.State != v1alpha1.StatePlugged {
		t.Fatalf("net1 %+v, want Plugged", st)
	}
	var pod corev1.Pod
	must(t, n.c.Get(n.ctx, types.NamespacedName{Namespace: n.pod.Namespace, Name: n.pod.Name}, &pod))
	if pod.Annotations[v1alpha1.NetworkStatusAnnotation] == "" {
		t.Fatalf("pod %s has no network-status after ADD: %v", pod.Name, pod.Annotations)
	}
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
	if st := findStatus(n.kuryrPod("rbac"), "net1"); st.State != v1alpha1.StateActive {
		t.Fatalf("net1 %+v after DEL, want Active", st)
	}
	eventually(t, "the node's capability labels, applied as the daemon", func() (bool, string) {
		var no corev1.Node
		must(t, n.c.Get(n.ctx, types.NamespacedName{Name: n.name}, &no))
		return no.Labels[v1alpha1.NodeLabelUIO] == "true", "labels " + labelString(no.Labels)
	})

	n.attachedEdit = func(types.UID, []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice { return nil }
	n.createPod("rbac-unrecorded", v1alpha1.StateActive)
	n.attachedEdit = nil
	_, err = n.cni.AddNetworkList(n.ctx, n.list, n.rt())
	cniCode(t, "ADD of a pod whose DPDK port the KuryrNode does not list", err, cniapi.CodeInternal)
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
	if r := rec.Refused(); len(r) > 0 {
		t.Fatalf("the API server refused the daemon: %v", r)
	}
}

// TestEveryDeployedRuleIsUsed: the daemon's ClusterRole in
// deploy/kuryr-dpdk/rbac.yaml grants nothing the daemon does not call.
// With all of it, a start (its reconcile), an ADD and a DEL in primary mode
// are refused nothing; with any one verb of any rule removed, the same run
// makes a call the API server refuses (403). Informers list first (see the
// controller's twin).
func TestEveryDeployedRuleIsUsed(t *testing.T) {
	perms, err := testenv.ClusterRolePermissions("../../deploy/kuryr-dpdk/rbac.yaml", "kuryr-daemon")
	must(t, err)
	if len(perms) < 5 {
		t.Fatalf("only %d permissions read: %v", len(perms), perms)
	}
	env.EveryPermissionUsed(t, perms, false, func(t *testing.T, ctx context.Context, cfg *rest.Config, refusalExpected bool) error {
		n := newNode(t)
		n.refusalsExpected = refusalExpected
		return n.daemonCalls(ctx, cfg)
	})
}

// daemonCalls runs the daemon as cfg (primary mode) through a start (its
// informers, the KuryrNode's among them, and the labels of its Node), an
// ADD of a pod with a DPDK interface and its DEL, and an ADD of a pod whose
// DPDK port the KuryrNode does not list (refused once the daemon read the
// KuryrNode from the API server) and its DEL, stopping early when ctx
// ends. It returns the first CNI failure.
//
// Before the first DEL the KuryrPod's interfaces are set back to Active
// (another writer, as the controller): the DEL's report then has nothing
// to change on the daemon's own copy, stale or not, and reads the
// KuryrPod from the API server to be sure (updateStatus).
func (n *node) daemonCalls(ctx context.Context, cfg *rest.Config) error {
	must(n.t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemonAs(cfg, 5*time.Second, true)
	_, kp := n.createPod("rbac", v1alpha1.StateActive)
	if _, err := n.cni.AddNetworkList(ctx, n.list, n.rt()); err != nil {
		return fmt.Errorf("ADD: %w", err)
	}
	if err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if err := n.c.Get(ctx, client.ObjectKeyFromObject(kp), kp); err != nil {
			return err
		}
		for i := range kp.Status.Interfaces {
			kp.Status.Interfaces[i].State = v1alpha1.StateActive
		}
		kp.Status.Summary = v1alpha1.InterfacesSummary(kp.Status.Interfaces)
		return n.c.Status().Update(ctx, kp)
	}); err != nil {
		return err
	}
	if err := n.cni.DelNetworkList(ctx, n.list, n.rt()); err != nil {
		return fmt.Errorf("DEL: %w", err)
	}
	n.attachedEdit = func(types.UID, []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice { return nil }
	n.createPod("rbac-unrecorded", v1alpha1.StateActive)
	n.attachedEdit = nil
	var refused *cnitypes.Error
	if _, err := n.cni.AddNetworkList(ctx, n.list, n.rt()); !errors.As(err, &refused) || refused.Code != cniapi.CodeInternal {
		return fmt.Errorf("ADD of a pod whose DPDK port is not recorded: %v, want code %d", err, cniapi.CodeInternal)
	}
	if err := n.cni.DelNetworkList(ctx, n.list, n.rt()); err != nil {
		return fmt.Errorf("DEL after the refused ADD: %w", err)
	}
	// The node's capability labels (applied at start, maybe still on
	// their way).
	for {
		var no corev1.Node
		if err := n.c.Get(ctx, types.NamespacedName{Name: n.name}, &no); err != nil {
			return err
		}
		if no.Labels[v1alpha1.NodeLabelIOMMU] != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not labelled: %w", n.name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
