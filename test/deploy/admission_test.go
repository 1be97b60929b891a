package deploy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
)

// TestDaemonTokenIsNodeScoped performs, with the token the kubelet would
// give kuryr-daemon's pod on node A (bound to that pod, so carrying node A),
// the writes a compromised node would try, and shows each refused by the
// base's RBAC and admission policy (deploy/kuryr-dpdk/admission.yaml): node
// B's KuryrPod status, a pod of node B, a pod of node A beyond its
// network-status annotation (its image: how a node would reach the
// controller's cloud credentials), the controller's fields of node A's
// KuryrPod status. The writes the daemon makes (internal/daemon/report.go)
// go through. A token of the same ServiceAccount not bound to a pod on a node
// may write nothing.
func TestDaemonTokenIsNodeScoped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	scheme, admin := applyBase(t)
	const ns = "node-scoped"
	nodeA, nodeB := "node-scoped-a", "node-scoped-b"
	must(t, admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for _, n := range []string{nodeA, nodeB} {
		must(t, admin.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}))
	}
	daemonA, err := env.NodeBoundServiceAccountConfig(ctx, "kuryr-dpdk", "kuryr-daemon", "kuryr-daemon-a", nodeA)
	must(t, err)
	// The same ServiceAccount's token bound to no pod: no node claim.
	unbound, err := env.ServiceAccountConfig("kuryr-dpdk", "kuryr-daemon")
	must(t, err)

	// What the controller made: a pod and its KuryrPod on each node.
	pods := map[string]*corev1.Pod{}
	for _, n := range []string{nodeA, nodeB} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "vnf-" + n, Namespace: ns, Annotations: map[string]string{"team": "red"}},
			Spec: corev1.PodSpec{NodeName: n, Containers: []corev1.Container{{Name: "vnf", Image: "vnf:1"}}}}
		must(t, admin.Create(ctx, p))
		pods[n] = p
		createKuryrPod(ctx, t, admin, p)
	}

	daemon := func(cfg *rest.Config) client.Client {
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		must(t, err)
		return c
	}
	a, other := daemon(daemonA), daemon(unbound)

	// The policy is enforced once the API server has loaded it (a second
	// or so after the apply): wait for the first refusal it names.
	var last error
	deadline := time.Now().Add(30 * time.Second)
	for {
		last = plug(ctx, a, ns, "vnf-"+nodeB, func(s *v1alpha1.InterfaceStatus) { s.State = v1alpha1.StatePlugged })
		if apierrors.IsForbidden(last) && strings.Contains(last.Error(), "kuryr-daemon-own-node") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	refused(t, "node A's daemon plugging node B's KuryrPod", last, "of another node")

	refused(t, "node A's daemon writing node B's pod's network-status",
		patchPod(ctx, a, pods[nodeB], `{"metadata":{"annotations":{"k8s.v1.cni.cncf.io/network-status":"[]"}}}`), "of another node")
	refused(t, "node A's daemon changing the image of a pod on node A",
		patchPod(ctx, a, pods[nodeA], `{"spec":{"containers":[{"name":"vnf","image":"evil:1"}]}}`), "only the k8s.v1.cni.cncf.io/network-status annotation")
	refused(t, "node A's daemon changing another annotation of a pod on node A",
		patchPod(ctx, a, pods[nodeA], `{"metadata":{"annotations":{"team":"blue"}}}`), "only the k8s.v1.cni.cncf.io/network-status annotation")
	refused(t, "node A's daemon labelling a pod on node A",
		patchPod(ctx, a, pods[nodeA], `{"metadata":{"labels":{"x":"y"}}}`), "only the k8s.v1.cni.cncf.io/network-status annotation")
	refused(t, "node A's daemon pointing node A's KuryrPod at another port",
		plug(ctx, a, ns, "vnf-"+nodeA, func(s *v1alpha1.InterfaceStatus) { s.PortID = "port-of-" + nodeB }), "the rest is the controller's")
	refused(t, "node A's daemon marking an interface Failed",
		plug(ctx, a, ns, "vnf-"+nodeA, func(s *v1alpha1.InterfaceStatus) { s.State = v1alpha1.StateFailed }), "the rest is the controller's")
	refused(t, "node A's daemon deleting node A's KuryrPod",
		a.Delete(ctx, &v1alpha1.KuryrPod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vnf-" + nodeA}}), "")
	refused(t, "a kuryr-daemon token bound to no node",
		plug(ctx, other, ns, "vnf-"+nodeA, func(s *v1alpha1.InterfaceStatus) { s.State = v1alpha1.StatePlugged }), "not bound to a pod on a node")

	// What the daemon does on its own node goes through.
	if err := plug(ctx, a, ns, "vnf-"+nodeA, func(s *v1alpha1.InterfaceStatus) {
		s.State, s.PCIAddress, s.OriginalDriver, s.BoundDriver = v1alpha1.StatePlugged, "0000:00:05.0", "virtio-pci", "vfio-pci"
	}); err != nil {
		t.Fatalf("node A's daemon plugging node A's KuryrPod: %v", err)
	}
	if err := patchPod(ctx, a, pods[nodeA], `{"metadata":{"annotations":{"k8s.v1.cni.cncf.io/network-status":"[]"}}}`); err != nil {
		t.Fatalf("node A's daemon writing network-status of its pod: %v", err)
	}
	if err := plug(ctx, a, ns, "vnf-"+nodeA, func(s *v1alpha1.InterfaceStatus) { s.State, s.BoundDriver = v1alpha1.StateActive, "" }); err != nil {
		t.Fatalf("node A's daemon unplugging node A's KuryrPod: %v", err)
	}

	// Nothing refused changed anything.
	var b v1alpha1.KuryrPod
	must(t, admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "vnf-" + nodeB}, &b))
	if s := b.Status.Interfaces[0]; s.State != v1alpha1.StateActive {
		t.Errorf("node B's KuryrPod after the refusals: %+v", s)
	}
	var pb corev1.Pod
	must(t, admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "vnf-" + nodeB}, &pb))
	if _, ok := pb.Annotations[v1alpha1.NetworkStatusAnnotation]; ok {
		t.Errorf("node B's pod got a network-status: %v", pb.Annotations)
	}
	var pa corev1.Pod
	must(t, admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "vnf-" + nodeA}, &pa))
	if pa.Spec.Containers[0].Image != "vnf:1" || pa.Annotations["team"] != "red" || len(pa.Labels) != 0 {
		t.Errorf("node A's pod after the refusals: image %s, annotations %v, labels %v", pa.Spec.Containers[0].Image, pa.Annotations, pa.Labels)
	}
}

// createKuryrPod records an Active nested-dpdk interface for pod, as the
// controller would (the CRD may take a moment to be served after the apply).
func createKuryrPod(ctx context.Context, t *testing.T, c client.Client, pod *corev1.Pod) {
	t.Helper()
	kp := &v1alpha1.KuryrPod{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, Labels: map[string]string{v1alpha1.NodeLabel: pod.Spec.NodeName}},
		Spec: v1alpha1.KuryrPodSpec{PodUID: pod.UID, NodeName: pod.Spec.NodeName, Interfaces: []v1alpha1.InterfaceRequest{
			{IfName: "net1", Driver: v1alpha1.DriverNestedDPDK, SubnetID: "subnet-1"}}},
	}
	createServed(ctx, t, c, kp)
	kp.Status = v1alpha1.KuryrPodStatus{Interfaces: []v1alpha1.InterfaceStatus{{
		IfName: "net1", Driver: v1alpha1.DriverNestedDPDK, PortID: "port-of-" + pod.Spec.NodeName,
		MAC: "fa:16:3e:00:00:01", IPs: []string{"10.3.0.5/24"}, MTU: 1450, State: v1alpha1.StateActive,
	}}}
	must(t, c.Status().Update(ctx, kp))
}

// applyBase applies the base (deploy/kuryr-dpdk) and returns the scheme
// of kuryr-dpdk's objects and a client of the API server's admin.
func applyBase(t *testing.T) (*runtime.Scheme, client.Client) {
	t.Helper()
	objs, _ := render(t, base)
	apply(t, objs)
	scheme, err := cmdutil.Scheme()
	must(t, err)
	admin, err := client.New(env.Config, client.Options{Scheme: scheme})
	must(t, err)
	return scheme, admin
}

// createServed creates obj as c, retrying while its CRD is not served yet
// (a moment after the apply), for up to 30 s.
func createServed(ctx context.Context, t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Create(ctx, obj)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// plug reads KuryrPod namespace/name as c and updates its status with
// change applied to its first interface, as the daemon does.
func plug(ctx context.Context, c client.Client, namespace, name string, change func(*v1alpha1.InterfaceStatus)) error {
	var kp v1alpha1.KuryrPod
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &kp); err != nil {
		return fmt.Errorf("get KuryrPod %s: %w", name, err)
	}
	change(&kp.Status.Interfaces[0])
	return c.Status().Update(ctx, &kp)
}

func patchPod(ctx context.Context, c client.Client, pod *corev1.Pod, patch string) error {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
	return c.Patch(ctx, p, client.RawPatch(types.StrategicMergePatchType, []byte(patch)))
}

// refused fails unless err is the API server's refusal, naming want.
func refused(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: allowed, want refused", what)
	case !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err):
		t.Errorf("%s: %v, want refused (403)", what, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s: refused with %q, want a reason naming %q", what, err, want)
	default:
		t.Logf("%s: refused: %v", what, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
