package dra

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestRunsWithDeployedRBAC runs the driver as kuryr-daemon's
// ServiceAccount of deploy/kuryr-dpdk, with a token bound to a pod on its
// node as the kubelet gives it, with the RBAC of rbac.yaml and dra.yaml
// (whose DeviceClass the API server takes too): it publishes, prepares and
// unprepares, and confirms a Prepare's refusal with the API server, with
// nothing refused.
func TestRunsWithDeployedRBAC(t *testing.T) {
	n := newNode(t)
	ctx := n.ctx
	if _, err := testenv.Apply(ctx, env.Config, "../../deploy/kuryr-dpdk/rbac.yaml", "../../deploy/kuryr-dpdk/dra.yaml"); err != nil {
		t.Fatal(err)
	}
	sa, err := env.NodeBoundServiceAccountConfig(ctx, "kuryr-dpdk", "kuryr-daemon", "kuryr-daemon-"+n.name, n.name)
	must(t, err)
	rec := testenv.NewRefusals()
	must(t, n.driverCalls(ctx, rec.Wrap(sa)))
	if r := rec.Refused(); len(r) > 0 {
		t.Fatalf("the API server refused %v", r)
	}
}

// TestEveryDeployedRuleIsUsed: ClusterRole kuryr-daemon-dra in
// deploy/kuryr-dpdk/dra.yaml grants nothing the driver does not call. The
// driver runs as a ServiceAccount with a token bound to a pod on its node,
// as in a DaemonSet (the claim status's associated-node check needs that).
// With all of the role, publishing (with a stale slice of the pool to
// delete and a change to update), a Prepare refused on the KuryrNode (read
// from the API server to confirm it), a Prepare and an Unprepare are
// refused nothing by the API server; with any one verb of any rule removed, the same run makes a call
// the API server refuses (403).
func TestEveryDeployedRuleIsUsed(t *testing.T) {
	perms, err := testenv.ClusterRolePermissions("../../deploy/kuryr-dpdk/dra.yaml", "kuryr-daemon-dra")
	must(t, err)
	if len(perms) < 9 {
		t.Fatalf("only %d permissions read: %v", len(perms), perms)
	}
	nodeOf := map[string]string{} // bearer token -> the node it is bound to
	var mu sync.Mutex
	// as makes ServiceAccount default/<name> and a token bound to a pod on
	// node <name>.
	as := func(ctx context.Context, name string) (string, *rest.Config, error) {
		kube, err := kubernetes.NewForConfig(env.Config)
		if err != nil {
			return "", nil, err
		}
		if _, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			return "", nil, err
		}
		if _, err := kube.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			return "", nil, err
		}
		cfg, err := env.NodeBoundServiceAccountConfig(ctx, "default", name, name, name)
		if err != nil {
			return "", nil, err
		}
		mu.Lock()
		nodeOf[cfg.BearerToken] = name
		mu.Unlock()
		return "system:serviceaccount:default:" + name, cfg, nil
	}
	env.EveryPermissionUsedBy(t, perms, false, as, func(t *testing.T, ctx context.Context, cfg *rest.Config, refusalExpected bool) error {
		mu.Lock()
		name := nodeOf[cfg.BearerToken]
		mu.Unlock()
		n := newNodeNamed(t, name)
		n.refusalsExpected = refusalExpected
		return n.driverCalls(ctx, cfg)
	})
}

// driverCalls runs the driver as cfg through everything it calls the API
// server for: it deletes a stale slice of its pool (one it did not
// make, as an older driver version might have left), publishes port A,
// updates the slice when port B comes, refuses a claim of B once B is a
// pod's (after reading the KuryrNode from the API server to confirm it),
// and prepares and unprepares a claim of A. It stops at the first failure,
// or when ctx ends.
func (n *node) driverCalls(ctx context.Context, cfg *rest.Config) error {
	slices := n.kube.ResourceV1().ResourceSlices()
	stale, err := slices.Create(ctx, &resourceapi.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{GenerateName: n.name + "-stale-"},
		Spec: resourceapi.ResourceSliceSpec{Driver: DriverName, NodeName: ptr.To(n.name),
			Pool: resourceapi.ResourcePool{Name: n.name, ResourceSliceCount: 1}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if err := n.sim.AddVirtioNet(pciA, macA); err != nil {
		return err
	}
	if err := n.setDevicesCtx(ctx, dev(portA, macA, v1alpha1.DPDKDeviceReady, "")); err != nil {
		return err
	}
	if err := n.startCtx(ctx, cfg); err != nil {
		return err
	}
	if err := waitFor(ctx, "the stale slice's deletion", func() (bool, error) {
		_, err := slices.Get(ctx, stale.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), client404(err)
	}); err != nil {
		return err
	}
	if _, err := n.waitSliceCtx(ctx, hasDevices(portA)); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := n.sim.AddVirtioNet(pciB, macB); err != nil {
		return err
	}
	if err := n.setDevicesCtx(ctx, dev(portA, macA, v1alpha1.DPDKDeviceReady, ""), dev(portB, macB, v1alpha1.DPDKDeviceReady, "")); err != nil {
		return err
	}
	if _, err := n.waitSliceCtx(ctx, hasDevices(portA, portB)); err != nil {
		return fmt.Errorf("republish: %w", err)
	}
	c, err := n.claimCtx(ctx, "rbac", DeviceName(portA), "")
	if err != nil {
		return err
	}
	refused, err := n.claimCtx(ctx, "rbac-refused", DeviceName(portB), "")
	if err != nil {
		return err
	}
	if err := n.setDevicesCtx(ctx, dev(portA, macA, v1alpha1.DPDKDeviceInUse, OwnerPrefix+string(c.UID)), dev(portB, macB, v1alpha1.DPDKDeviceInUse, v1alpha1.DPDKOwnerPod+"p1")); err != nil {
		return err
	}
	r, err := n.prepareCtx(ctx, refused)
	if err != nil {
		return err
	}
	if !strings.Contains(r.Error, "held by another consumer") {
		return fmt.Errorf("prepare of a pod's port: %q, want it refused as another consumer's", r.Error)
	}
	r, err = n.prepareCtx(ctx, c)
	if err != nil {
		return err
	}
	if r.Error != "" {
		return fmt.Errorf("prepare: %s", r.Error)
	}
	e, err := n.unprepareCtx(ctx, c)
	if err != nil {
		return err
	}
	if e != "" {
		return fmt.Errorf("unprepare: %s", e)
	}
	return nil
}

// client404 is err unless it is a 404.
func client404(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
