package deploy

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

const draDriver = "dpdk.kuryr-dpdk.io"

// TestDaemonTokenNodeLabelsAndSlices performs, with the token the kubelet
// would give kuryr-daemon's pod on node A (bound to that pod, so carrying
// node A), the Node and ResourceSlice writes a compromised node would try,
// and shows each refused by the base's admission policy
// (deploy/kuryr-dpdk/admission.yaml): node B's labels, a label of node A
// outside kuryr-dpdk.io/ (set, changed or removed), node A's taints and
// annotations, a ResourceSlice for node B, for no node, or of another
// driver. What the daemon does (internal/daemon/labels.go: a server-side
// apply of its kuryr-dpdk.io/ labels, removing those it no longer finds)
// and what its DRA plugin will do (create, update, delete node A's slices
// of dpdk.kuryr-dpdk.io) goes through. The ResourceSlice verbs are granted
// here as the DRA driver's RBAC will grant them: the refusals are the
// policy's, not RBAC's. A token not bound to a pod on a node may label
// nothing.
func TestDaemonTokenNodeLabelsAndSlices(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	objs, _ := render(t, base)
	apply(t, objs)
	admin, err := kubernetes.NewForConfig(env.Config)
	must(t, err)
	nodeA, nodeB := "labels-a", "labels-b"
	created := map[string]*corev1.Node{}
	for _, n := range []string{nodeA, nodeB} {
		created[n], err = admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n,
			Labels: map[string]string{"topology.kubernetes.io/zone": "az1"}, Annotations: map[string]string{v1alpha1.HotplugSlotsAnnotation: "4"}}},
			metav1.CreateOptions{})
		must(t, err)
	}
	const grant = "kuryr-daemon-resourceslices-test"
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: grant},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"resource.k8s.io"}, Resources: []string{"resourceslices"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}}}, metav1.CreateOptions{})
	must(t, err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: grant},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: grant},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "kuryr-dpdk", Name: "kuryr-daemon"}}}, metav1.CreateOptions{})
	must(t, err)

	cfgA, err := env.NodeBoundServiceAccountConfig(ctx, "kuryr-dpdk", "kuryr-daemon", "kuryr-daemon-labels-a", nodeA)
	must(t, err)
	a, err := kubernetes.NewForConfig(cfgA)
	must(t, err)
	cfgUnbound, err := env.ServiceAccountConfig("kuryr-dpdk", "kuryr-daemon")
	must(t, err)
	unbound, err := kubernetes.NewForConfig(cfgUnbound)
	must(t, err)

	patchNode := func(c kubernetes.Interface, node, patch string) error {
		_, err := c.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}
	applyLabels := func(c kubernetes.Interface, node string, labels map[string]string, dryRun ...string) error {
		_, err := c.CoreV1().Nodes().Apply(ctx, corev1ac.Node(node).WithLabels(labels),
			metav1.ApplyOptions{FieldManager: "kuryr-daemon", Force: true, DryRun: dryRun})
		return err
	}
	slice := func(name, driver string, node *string) *resourcev1.ResourceSlice {
		s := &resourcev1.ResourceSlice{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: resourcev1.ResourceSliceSpec{
			Driver: driver, Pool: resourcev1.ResourcePool{Name: "pool", ResourceSliceCount: 1},
			Devices: []resourcev1.Device{{Name: "port-0b7e1c52-3a36-4c39-9d5e-6a3e0c1d2f4a"}}}}
		if node != nil {
			s.Spec.NodeName = node
		} else {
			s.Spec.AllNodes = ptr.To(true)
		}
		return s
	}
	createSlice := func(c kubernetes.Interface, s *resourcev1.ResourceSlice) error {
		_, err := c.ResourceV1().ResourceSlices().Create(ctx, s, metav1.CreateOptions{})
		return err
	}
	own := map[string]string{v1alpha1.NodeLabelUIO: "true", v1alpha1.NodeLabelIOMMU: v1alpha1.NodeIOMMUNone}

	// The policy is enforced once the API server has loaded it: wait for
	// the first refusal it names (in dry runs, which admission sees too,
	// so that the writes made before it is loaded change nothing).
	var last error
	deadline := time.Now().Add(30 * time.Second)
	for {
		last = applyLabels(a, nodeB, own, metav1.DryRunAll)
		if apierrors.IsForbidden(last) && strings.Contains(last.Error(), "kuryr-daemon-own-node") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	refused(t, "node A's daemon labelling node B", last, "of another node")
	refused(t, "node A's daemon labelling node B (merge patch)",
		patchNode(a, nodeB, `{"metadata":{"labels":{"kuryr-dpdk.io/vfio-pci":"true"}}}`), "of another node")
	refused(t, "node A's daemon setting a foreign label on node A",
		patchNode(a, nodeA, `{"metadata":{"labels":{"node-role.kubernetes.io/control-plane":""}}}`), "only the labels under kuryr-dpdk.io/")
	refused(t, "node A's daemon changing a foreign label of node A",
		patchNode(a, nodeA, `{"metadata":{"labels":{"topology.kubernetes.io/zone":"az2"}}}`), "only the labels under kuryr-dpdk.io/")
	refused(t, "node A's daemon removing a foreign label of node A",
		patchNode(a, nodeA, `{"metadata":{"labels":{"topology.kubernetes.io/zone":null}}}`), "only the labels under kuryr-dpdk.io/")
	refused(t, "node A's daemon tainting node A",
		patchNode(a, nodeA, `{"spec":{"taints":[{"key":"evil","effect":"NoSchedule"}]}}`), "only the labels under kuryr-dpdk.io/")
	refused(t, "node A's daemon raising node A's hot-plug slots annotation",
		patchNode(a, nodeA, `{"metadata":{"annotations":{"kuryr-dpdk.io/hotplug-slots":"99"}}}`), "only the labels under kuryr-dpdk.io/")
	refused(t, "node A's daemon writing node A's status",
		func() error {
			_, err := a.CoreV1().Nodes().Patch(ctx, nodeA, types.StrategicMergePatchType,
				[]byte(`{"status":{"capacity":{"example.com/x":"1"}}}`), metav1.PatchOptions{}, "status")
			return err
		}(), "nodes/status")
	refused(t, "a kuryr-daemon token bound to no node labelling node A",
		applyLabels(unbound, nodeA, own), "not bound to a pod on a node")

	refused(t, "node A's daemon publishing a ResourceSlice of node B",
		createSlice(a, slice("dpdk-"+nodeB, draDriver, ptr.To(nodeB))), "of another node")
	refused(t, "node A's daemon publishing a ResourceSlice for all nodes",
		createSlice(a, slice("dpdk-all", draDriver, nil)), "of another node")
	refused(t, "node A's daemon publishing a ResourceSlice of another driver on node A",
		createSlice(a, slice("gpu-"+nodeA, "gpu.example.com", ptr.To(nodeA))), "only ResourceSlices of the driver dpdk.kuryr-dpdk.io")
	// A slice of node B the DRA plugin of node B published.
	must(t, createSlice(admin, slice("dpdk-"+nodeB, draDriver, ptr.To(nodeB))))
	refused(t, "node A's daemon deleting node B's ResourceSlice",
		a.ResourceV1().ResourceSlices().Delete(ctx, "dpdk-"+nodeB, metav1.DeleteOptions{}), "of another node")

	// What the daemon does on its own node goes through.
	if err := applyLabels(a, nodeA, own); err != nil {
		t.Fatalf("node A's daemon applying its labels to node A: %v", err)
	}
	delete(own, v1alpha1.NodeLabelUIO)
	if err := applyLabels(a, nodeA, own); err != nil {
		t.Fatalf("node A's daemon removing one of its labels from node A: %v", err)
	}
	if err := createSlice(a, slice("dpdk-"+nodeA, draDriver, ptr.To(nodeA))); err != nil {
		t.Fatalf("node A's daemon publishing node A's ResourceSlice: %v", err)
	}
	s, err := a.ResourceV1().ResourceSlices().Get(ctx, "dpdk-"+nodeA, metav1.GetOptions{})
	must(t, err)
	s.Spec.Pool.Generation++
	if _, err := a.ResourceV1().ResourceSlices().Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("node A's daemon updating node A's ResourceSlice: %v", err)
	}
	if err := a.ResourceV1().ResourceSlices().Delete(ctx, "dpdk-"+nodeA, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("node A's daemon deleting node A's ResourceSlice: %v", err)
	}

	// Nothing refused changed anything.
	na, err := admin.CoreV1().Nodes().Get(ctx, nodeA, metav1.GetOptions{})
	must(t, err)
	wantA := map[string]string{"topology.kubernetes.io/zone": "az1", v1alpha1.NodeLabelIOMMU: v1alpha1.NodeIOMMUNone}
	if len(na.Labels) != len(wantA) || na.Labels["topology.kubernetes.io/zone"] != "az1" || na.Labels[v1alpha1.NodeLabelIOMMU] != v1alpha1.NodeIOMMUNone ||
		!equality.Semantic.DeepEqual(na.Spec, created[nodeA].Spec) || na.Annotations[v1alpha1.HotplugSlotsAnnotation] != "4" {
		t.Errorf("node A after the refusals: labels %v (want %v), spec %+v, annotations %v", na.Labels, wantA, na.Spec, na.Annotations)
	}
	nb, err := admin.CoreV1().Nodes().Get(ctx, nodeB, metav1.GetOptions{})
	must(t, err)
	if !maps.Equal(nb.Labels, created[nodeB].Labels) {
		t.Errorf("node B after the refusals: labels %v", nb.Labels)
	}
	if _, err := admin.ResourceV1().ResourceSlices().Get(ctx, "dpdk-"+nodeB, metav1.GetOptions{}); err != nil {
		t.Errorf("node B's ResourceSlice after the refusals: %v", err)
	}
}
