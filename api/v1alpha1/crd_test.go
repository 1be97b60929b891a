package v1alpha1_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, testenv.Options{CRDDirectoryPaths: []string{"../../deploy/crds"}}))
}

func newClient(t *testing.T) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return c
}

// TestKuryrPodRoundTrip installs the generated CRDs in a real API server,
// creates a KuryrPod owned by a pod, writes its status through the status
// subresource, and reads every field back.
func TestKuryrPodRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newClient(t)

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "vnf", Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	kp := &v1alpha1.KuryrPod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "vnf", Namespace: "default",
			Labels:     map[string]string{v1alpha1.NodeLabel: "node-1", v1alpha1.PodUIDLabel: string(pod.UID)},
			Finalizers: []string{v1alpha1.Finalizer},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID,
			}},
		},
		Spec: v1alpha1.KuryrPodSpec{
			PodUID: pod.UID, NodeName: "node-1",
			Interfaces: []v1alpha1.InterfaceRequest{
				{IfName: "eth0", Driver: v1alpha1.DriverNestedVLAN, SubnetID: "sub-mgmt", DefaultRoute: true},
				{IfName: "net1", Network: "default/dataplane", Driver: v1alpha1.DriverNestedDPDK, SubnetID: "sub-dp", DPDKDriver: v1alpha1.DPDKDriverUIOPCIGeneric},
			},
		},
	}
	if err := c.Create(ctx, kp); err != nil {
		t.Fatalf("create KuryrPod: %v", err)
	}
	kp.Status = v1alpha1.KuryrPodStatus{
		Summary: "2/2 ready",
		Interfaces: []v1alpha1.InterfaceStatus{
			{IfName: "eth0", Driver: v1alpha1.DriverNestedVLAN, PortID: "p1", MAC: "fa:16:3e:00:00:01", IPs: []string{"10.0.0.5/24"}, VLANID: 101, MTU: 1450, State: v1alpha1.StateActive},
			{IfName: "net1", Driver: v1alpha1.DriverNestedDPDK, PortID: "p2", MAC: "fa:16:3e:00:00:02", PCIAddress: "0000:01:00.0", OriginalDriver: "virtio-pci", BoundDriver: "uio_pci_generic", State: v1alpha1.StatePlugged},
		},
		Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "AllPlugged", LastTransitionTime: metav1.Now()}},
	}
	if err := c.Status().Update(ctx, kp); err != nil {
		t.Fatalf("update KuryrPod status: %v", err)
	}
	var got v1alpha1.KuryrPod
	if err := c.Get(ctx, client.ObjectKeyFromObject(kp), &got); err != nil {
		t.Fatalf("get KuryrPod: %v", err)
	}
	if len(got.Status.Interfaces) != 2 || got.Status.Interfaces[0].VLANID != 101 ||
		got.Status.Interfaces[1].PCIAddress != "0000:01:00.0" || got.Status.Interfaces[1].BoundDriver != "uio_pci_generic" {
		t.Fatalf("status did not round-trip: %+v", got.Status.Interfaces)
	}
	if got.Spec.Interfaces[1].DPDKDriver != v1alpha1.DPDKDriverUIOPCIGeneric || got.Labels[v1alpha1.NodeLabel] != "node-1" {
		t.Fatalf("spec/labels did not round-trip: %+v %v", got.Spec, got.Labels)
	}
}

// TestSchemaRejectsUnknownDriver proves the generated schema is enforced by
// the API server, not only by our code.
func TestSchemaRejectsUnknownDriver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newClient(t)
	kp := &v1alpha1.KuryrPod{
		ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "default"},
		Spec: v1alpha1.KuryrPodSpec{PodUID: "u", NodeName: "n", Interfaces: []v1alpha1.InterfaceRequest{
			{IfName: "net1", Driver: "nested-sriov", SubnetID: "s"},
		}},
	}
	err := c.Create(ctx, kp)
	if err == nil || !strings.Contains(err.Error(), "nested-sriov") {
		t.Fatalf("create with driver nested-sriov: got %v, want a validation error naming it", err)
	}
}

func TestKuryrNodeIsClusterScoped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newClient(t)
	kn := &v1alpha1.KuryrNode{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	if err := c.Create(ctx, kn); err != nil {
		t.Fatalf("create KuryrNode: %v", err)
	}
	kn.Status = v1alpha1.KuryrNodeStatus{ServerID: "srv-1", TrunkID: "trunk-1", VLANIDs: []int{101, 102}}
	if err := c.Status().Update(ctx, kn); err != nil {
		t.Fatalf("update KuryrNode status: %v", err)
	}
	var got v1alpha1.KuryrNode
	if err := c.Get(ctx, client.ObjectKey{Name: "node-1"}, &got); err != nil {
		t.Fatalf("get KuryrNode: %v", err)
	}
	if got.Status.TrunkID != "trunk-1" || len(got.Status.VLANIDs) != 2 {
		t.Fatalf("status did not round-trip: %+v", got.Status)
	}
}
