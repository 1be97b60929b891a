package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/dra"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// useDRAEnv starts an all-in-one with one real node and the DRA driver's
// devices (aio.Options.DRA: kuryr-controller's DPDK pool on the node,
// published by the node's kuryr-daemon), with real Multus as the node's
// CNI so that the Multus tests of DRA run in it too, and makes it the
// package's env for the rest of the test (as useMultusEnv).
func useDRAEnv(t *testing.T) {
	t.Helper()
	useEnv(t, aio.Options{Nodes: 1, RealNodes: true, Multus: true, DRA: true, Log: os.Stderr}, "DRA and Multus")
}

// claimPod is a pod on the DRA environment's node asking for a DPDK port
// through a claim of the ResourceClaimTemplate aio.DemoClaimTemplate,
// running the demo image (a shell, ls, env) so that the test can look into
// its container.
func claimPod(namespace, name string) *corev1.Pod {
	p := aio.DRADemoPod(namespace, name)
	p.Annotations = nil // eth0 only: the device comes from the claim alone
	env.AdaptPod(p)
	p.Spec.Containers[0].Image = aio.DemoImage
	p.Spec.Containers[0].Command = []string{"/bin/sleep", "2147483647"}
	p.Spec.TerminationGracePeriodSeconds = ptr.To(int64(1))
	return p
}

// preparedDevice is what the DRA driver reported in a claim's status.
type preparedDevice struct {
	device, pciAddress, portID string
}

// claimDevice returns the pod's claim and the one device the DRA driver
// reported in its status.
func claimDevice(t *testing.T, ctx context.Context, pod *corev1.Pod) (*resourceapi.ResourceClaim, preparedDevice) {
	t.Helper()
	claim, err := env.PodClaim(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(claim.Status.Devices) != 1 || claim.Status.Devices[0].Data == nil {
		t.Fatalf("claim %s/%s status devices %+v, want the one device the driver prepared", claim.Namespace, claim.Name, claim.Status.Devices)
	}
	d := claim.Status.Devices[0]
	var data struct{ PCIAddress, PortID string }
	if err := json.Unmarshal(d.Data.Raw, &data); err != nil {
		t.Fatalf("claim %s status data %s: %v", claim.Name, d.Data.Raw, err)
	}
	if d.Driver != dra.DriverName || d.Device != dra.DeviceNamePrefix+data.PortID || data.PCIAddress == "" {
		t.Errorf("claim %s status device %s/%s with data %s: want driver %s, device port-<portID>, a PCI address", claim.Name, d.Driver, d.Device, d.Data.Raw, dra.DriverName)
	}
	return claim, preparedDevice{device: d.Device, pciAddress: data.PCIAddress, portID: data.PortID}
}

// uioNodes lists the /dev/uio* nodes a pod's container sees.
func uioNodes(t *testing.T, ctx context.Context, pod *corev1.Pod) []string {
	t.Helper()
	out, err := env.Exec(ctx, pod, "ls /dev")
	if err != nil {
		t.Fatal(err)
	}
	var uio []string
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "uio") {
			uio = append(uio, f)
		}
	}
	return uio
}

// kuryrNodeDevice is the node's KuryrNode entry of port.
func kuryrNodeDevice(t *testing.T, ctx context.Context, node, port string) v1alpha1.DPDKDevice {
	t.Helper()
	var kn v1alpha1.KuryrNode
	if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, &kn); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(kn.Status.DPDKDevices, func(d v1alpha1.DPDKDevice) bool { return d.PortID == port })
	if i < 0 {
		return v1alpha1.DPDKDevice{}
	}
	return kn.Status.DPDKDevices[i]
}

// TestDRAOnARealNode runs the DRA tests in one environment of their own
// (useDRAEnv): one real node, its DPDK pool, real Multus.
func TestDRAOnARealNode(t *testing.T) {
	useDRAEnv(t)
	t.Run("ClaimGetsOnlyItsDevice", testClaimGetsOnlyItsDevice)
	t.Run("MultusPassesTheClaimsDevice", testMultusPassesTheClaimsDevice)
	t.Run("ExtendedResourceGetsADevice", testExtendedResourceGetsADevice)
}

// A pod with a ResourceClaim of DeviceClass dpdk.kuryr-dpdk.io, on the real
// node (real scheduler, kubelet and containerd with CDI), with the node's
// DPDK pool held at its two devices (dpdk-pool-size "0,2": no refill):
//   - two pods with a claim each run; each claim's status names its device
//     (port, PCI address); the container sees exactly one /dev/uioN (the
//     character device the simulated uio_pci_generic made, as the claim's
//     CDI spec names it), not the other pod's, and PCIDEVICE_… names its
//     own PCI address; the device is bound to uio_pci_generic on the node
//     and the KuryrNode shows it InUse by claim/<UID>;
//   - a third pod with a claim stays Pending with the scheduler's reason
//     (no device left);
//   - deleting the first pod unprepares its claim: its CDI spec is gone,
//     its device went back to virtio-pci (its netdev came back), and the
//     third pod is scheduled on its port and runs;
//   - once every pod is gone the claims' ports are back in the pool
//     (Ready, no owner) and nothing is left (aio.Env.Leaks, which counts
//     the DRA driver's checkpoints, device-info files and CDI specs too);
//   - the node's kuryr-daemon, scraped as a Prometheus with the
//     metrics-reader role would, counted the kubelet's calls: at least two
//     claims prepared once the first two pods run, then at least three
//     prepared and three unprepared (a, b, c), each Prepare timed.
func testClaimGetsOnlyItsDevice(t *testing.T) {
	const namespace = "e2e-dra"
	ctx := setup(t, namespace, 5*time.Minute)
	if err := env.CreateClaimTemplate(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	node := env.Nodes[0]
	token := metricsScraper(t, ctx, namespace)
	before := daemonMetrics(t, ctx, node, token)
	counted := func(when string, want map[string]float64) {
		t.Helper()
		now := daemonMetrics(t, ctx, node, token)
		for key, least := range want {
			got := now[key] - before[key]
			fmt.Fprintf(os.Stderr, "e2e: kuryr-daemon on %s, %s: %s rose by %v\n", node.Name, when, key, got)
			if got < least {
				t.Errorf("%s: kuryr-daemon's %s rose by %v, want at least %v", when, key, got, least)
			}
		}
	}
	const (
		prepared   = `kuryr_dra_claims_total{operation="prepare",result="ok"}`
		unprepared = `kuryr_dra_claims_total{operation="unprepare",result="ok"}`
		timed      = `kuryr_dra_prepare_duration_seconds_count`
	)
	// No refill: the pool keeps the two devices it has (the environment
	// made it, docs/all-in-one.md) and makes no more.
	err := env.Client.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node.Name}}, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"`+v1alpha1.DPDKPoolSizeAnnotation+`":"0,2"}}}`)))
	if err != nil {
		t.Fatal(err)
	}
	var devs []resourceapi.Device
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		devs, err = env.DRADevices(ctx, node.Name)
		return err == nil && len(devs) == 2, nil
	}); err != nil {
		t.Fatalf("node %s publishes %d devices, want its pool's 2: %v", node.Name, len(devs), err)
	}

	a, b := createPod(t, ctx, claimPod(namespace, "a")), createPod(t, ctx, claimPod(namespace, "b"))
	waitReady(t, ctx, namespace, 2*time.Minute, a.Name, b.Name)
	claimA, devA := claimDevice(t, ctx, a)
	claimB, devB := claimDevice(t, ctx, b)
	counted("with pods a and b running", map[string]float64{prepared: 2, timed: 2})
	if devA.pciAddress == devB.pciAddress || devA.portID == devB.portID {
		t.Fatalf("both claims got %+v and %+v: one device for two claims", devA, devB)
	}
	for _, c := range []struct {
		pod   *corev1.Pod
		claim *resourceapi.ResourceClaim
		dev   preparedDevice
		other preparedDevice
	}{{a, claimA, devA, devB}, {b, claimB, devB, devA}} {
		if got := node.PCI.Driver(c.dev.pciAddress); got != pcisim.DriverUIO {
			t.Errorf("device %s of pod %s is bound to %q on the node, want %s", c.dev.pciAddress, c.pod.Name, got, pcisim.DriverUIO)
		}
		uio, err := node.UIODevice(c.dev.pciAddress)
		if err != nil {
			t.Fatal(err)
		}
		otherUIO, err := node.UIODevice(c.other.pciAddress)
		if err != nil {
			t.Fatal(err)
		}
		seen := uioNodes(t, ctx, c.pod)
		fmt.Fprintf(os.Stderr, "e2e: pod %s, claim device %s (PCI %s, %s): its container's /dev has %v\n", c.pod.Name, c.dev.device, c.dev.pciAddress, uio, seen)
		if !slices.Equal(seen, []string{uio}) {
			t.Errorf("pod %s's container sees %v in /dev, want exactly its own %s (not the other pod's %s)", c.pod.Name, seen, uio, otherUIO)
		}
		envOut, err := env.Exec(ctx, c.pod, "env")
		if err != nil {
			t.Fatal(err)
		}
		if want := dra.PCIDeviceEnv + "=" + c.dev.pciAddress; !slices.Contains(strings.Fields(envOut), want) {
			t.Errorf("pod %s's environment has no %s:\n%s", c.pod.Name, want, envOut)
		}
		if d, owner := kuryrNodeDevice(t, ctx, node.Name, c.dev.portID), dra.OwnerPrefix+string(c.claim.UID); d.State != v1alpha1.DPDKDeviceInUse || d.Owner != owner {
			t.Errorf("KuryrNode %s shows port %s %s, owner %q; want InUse by %s", node.Name, c.dev.portID, d.State, d.Owner, owner)
		}
	}

	// No device left: the scheduler keeps the third pod Pending and says
	// why. Its reason is the claims' once the node is otherwise fit: a node
	// that is briefly not ready (its kubelet's network not ready while the
	// node could not reach the API server, as in one CI run: test/aio's
	// fabric bridge changing its MAC, fixed since) is the scheduler's first
	// reason until it is ready again, so other reasons are logged and
	// waited out, within the minute.
	c := createPod(t, ctx, claimPod(namespace, "c"))
	var reason string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p := getPod(t, ctx, namespace, c.Name)
		if cond := aio.PodCondition(p, corev1.PodScheduled); cond != nil && cond.Status == corev1.ConditionFalse {
			if r := cond.Reason + ": " + cond.Message; r != reason {
				reason = r
				fmt.Fprintf(os.Stderr, "e2e: pod c, a third claim for two devices: Pending, %s\n", reason)
			}
			return cond.Reason == corev1.PodReasonUnschedulable && strings.Contains(cond.Message, "claim"), nil
		}
		if p.Spec.NodeName != "" {
			return false, fmt.Errorf("scheduled on %s with no device free", p.Spec.NodeName)
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod c with a claim and no free device: not Unschedulable for its claims within a minute (last reason %q): %v", reason, err)
	}

	// The first pod goes: its claim is unprepared and its device freed,
	// and the third pod gets it.
	cdiSpec := node.FS(filepath.Join("/var/run/cdi", dra.DriverName+"-claim-"+string(claimA.UID)+".json"))
	if _, err := os.Stat(cdiSpec); err != nil {
		t.Errorf("CDI spec of claim %s: %v", claimA.Name, err)
	}
	deleted := time.Now()
	deleteAndWait(t, ctx, namespace, a.Name)
	// Back on virtio-pci: its netdev came back (the hot-plug history; the
	// pending pod's claim may take and bind the device again at once).
	rebound := func() bool {
		return slices.ContainsFunc(node.History(), func(ev aio.HotplugEvent) bool {
			return ev.Kind == "netdev-up" && ev.Addr == devA.pciAddress && ev.Time.After(deleted)
		})
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, statErr := os.Stat(cdiSpec)
		return os.IsNotExist(statErr) && rebound(), nil
	})
	if err != nil {
		_, statErr := os.Stat(cdiSpec)
		t.Errorf("after pod a's deletion: CDI spec %s (%v), device %s back on virtio-pci: %v; want the spec gone and the device rebound: %v",
			cdiSpec, statErr, devA.pciAddress, rebound(), err)
	}
	waitReady(t, ctx, namespace, 2*time.Minute, c.Name)
	_, devC := claimDevice(t, ctx, c)
	if devC.portID != devA.portID {
		t.Errorf("pod c got port %s, want the one pod a gave back (%s)", devC.portID, devA.portID)
	}

	deleteAndWait(t, ctx, namespace, b.Name, c.Name)
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, d := range []preparedDevice{devA, devB} {
			if k := kuryrNodeDevice(t, ctx, node.Name, d.portID); k.State != v1alpha1.DPDKDeviceReady || k.Owner != "" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("the claims' ports are not back in the pool (Ready, no owner): %v", err)
	}
	counted("with every pod gone", map[string]float64{prepared: 3, unprepared: 3, timed: 3})
	requireNoLeaks(t, ctx)
}

// Real Multus and a claim (docs/multus.md, "DRA"): a pod holds the
// ResourceClaim "dpdk-claim" of our class and names the NAD data-plane-dra
// (nested-dpdk, annotated k8s.v1.cni.cncf.io/resourceName: dpdk-claim) in
// its networks annotation. Multus reads the claim's CDI device from the
// kubelet's pod-resources API and hands it to kuryr-cni for dpdk0 as its
// deviceID: the name after "=" of the CDI device the DRA driver made for
// the claim, "<claim UID>-dev0". With a deviceID Multus also reads the
// delegate's device-info file (at the path it computes, where kuryr-daemon
// writes its own) into network-status: dpdk0's entry carries the PCI
// address of the device kuryr-dpdk plugged for dpdk0, which is the claim's
// own device (one pod, one device, two entry points: no second port;
// docs/dra.md). Deleting the pod and the claim leaves nothing.
func testMultusPassesTheClaimsDevice(t *testing.T) {
	const namespace = "e2e-dra-multus"
	ctx := setup(t, namespace, 4*time.Minute)
	const nadName, claimName = "data-plane-dra", "dpdk-claim"
	nad := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: nadName, Namespace: namespace,
		Annotations: map[string]string{"k8s.v1.cni.cncf.io/resourceName": claimName}},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: fmt.Sprintf(
			`{"cniVersion":"1.1.0","name":%q,"type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q,"dpdkDriver":"uio_pci_generic"}`,
			nadName, env.Networks.DataPlane.ID)}}
	if err := env.Client.Create(ctx, nad); err != nil {
		t.Fatal(err)
	}
	claim := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: claimName, Namespace: namespace},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{
			{Name: "port", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: aio.DRAClass}}}}}}
	claim, err := env.Clientset.ResourceV1().ResourceClaims(namespace).Create(ctx, claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := claimPod(namespace, "multus-claim")
	pod.Spec.ResourceClaims, pod.Spec.Containers[0].Resources.Claims = nil, nil
	aio.ClaimPort(pod, "", claimName)
	pod.Annotations = map[string]string{v1alpha1.NetworksAnnotation: nadName + "@dpdk0"}
	pod = createPod(t, ctx, pod)
	waitReady(t, ctx, namespace, 2*time.Minute, pod.Name)
	pod = getPod(t, ctx, namespace, pod.Name)

	delegates, err := env.MultusDelegateCalls(pod)
	if err != nil {
		t.Fatal(err)
	}
	want := string(claim.UID) + "-dev0"
	i := slices.IndexFunc(delegates, func(d aio.CNICall) bool { return d.IfName == "dpdk0" })
	if i < 0 {
		t.Fatalf("Multus made no ADD for dpdk0: %v", delegates)
	}
	fmt.Fprintf(os.Stderr, "e2e: multus called kuryr-cni for dpdk0 with deviceID %q (claim %s's CDI device %s=%s)\n",
		delegates[i].DeviceID, claimName, dra.CDIKind, want)
	if delegates[i].DeviceID != want {
		t.Errorf("Multus passed kuryr-cni deviceID %q for dpdk0, want the claim's CDI device name %q", delegates[i].DeviceID, want)
	}
	fmt.Fprintf(os.Stderr, "e2e: network-status written by Multus:\n%s\n", pod.Annotations[v1alpha1.NetworkStatusAnnotation])
	var dpdk0 v1alpha1.InterfaceStatus
	for _, i := range kuryrPod(t, ctx, namespace, pod.Name).Status.Interfaces {
		if i.IfName == "dpdk0" {
			dpdk0 = i
		}
	}
	_, seen := networkStatus(t, pod)
	if di := seen["dpdk0"].DeviceInfo; di == nil || di.Pci == nil || di.Pci.PciAddress != dpdk0.PCIAddress || dpdk0.PCIAddress == "" {
		t.Errorf("network-status dpdk0 device-info %+v, want the PCI address of dpdk0's device (%q)", di, dpdk0.PCIAddress)
	}
	_, claimed := claimDevice(t, ctx, pod)
	// One pod, one device, two entry points: the DPDK entry is the
	// claim's device, not a second port.
	if dpdk0.PCIAddress != claimed.pciAddress || dpdk0.PortID != claimed.portID {
		t.Errorf("dpdk0 is PCI %s (port %s), the claim's device is PCI %s (port %s): want one device for both",
			dpdk0.PCIAddress, dpdk0.PortID, claimed.pciAddress, claimed.portID)
	}
	fmt.Fprintf(os.Stderr, "e2e: dpdk0 is the claim's device: PCI %s, port %s\n", dpdk0.PCIAddress, dpdk0.PortID)

	deleteAndWait(t, ctx, namespace, pod.Name)
	if err := env.Clientset.ResourceV1().ResourceClaims(namespace).Delete(ctx, claimName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	requireNoLeaks(t, ctx)
}

// A pod that asks for a DPDK port as an extended resource
// (resources.limits dpdk.kuryr-dpdk.io/port: 1, the DeviceClass's
// extendedResourceName, KEP-5004) and names no claim: the real scheduler
// makes the claim itself (pod.status.extendedResourceClaimStatus), the
// controller gives it a pool device, the kubelet prepares it, and the
// container sees exactly that device's node and the variable naming its
// PCI address. Deleting the pod leaves nothing.
func testExtendedResourceGetsADevice(t *testing.T) {
	const namespace = "e2e-dra-extended"
	ctx := setup(t, namespace, 4*time.Minute)
	pod := claimPod(namespace, "extended")
	pod.Spec.ResourceClaims = nil
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{
		corev1.ResourceName(dra.ExtendedResourceName): resource.MustParse("1")}}
	pod = createPod(t, ctx, pod)
	waitReady(t, ctx, namespace, 2*time.Minute, pod.Name)
	pod = getPod(t, ctx, namespace, pod.Name)
	st := pod.Status.ExtendedResourceClaimStatus
	if st == nil || st.ResourceClaimName == "" {
		t.Fatalf("pod %s has no extendedResourceClaimStatus: the scheduler made no claim for %s", pod.Name, dra.ExtendedResourceName)
	}
	claim, err := env.Clientset.ResourceV1().ResourceClaims(namespace).Get(ctx, st.ResourceClaimName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(claim.Status.Devices) != 1 || claim.Status.Devices[0].Data == nil {
		t.Fatalf("claim %s status devices %+v, want the one device the driver prepared", claim.Name, claim.Status.Devices)
	}
	var data struct{ PCIAddress, PortID string }
	if err := json.Unmarshal(claim.Status.Devices[0].Data.Raw, &data); err != nil {
		t.Fatalf("claim %s status data %s: %v", claim.Name, claim.Status.Devices[0].Data.Raw, err)
	}
	node := env.Node(pod.Spec.NodeName)
	uio, err := node.UIODevice(data.PCIAddress)
	if err != nil {
		t.Fatal(err)
	}
	seen := uioNodes(t, ctx, pod)
	fmt.Fprintf(os.Stderr, "e2e: pod %s asked for %s: the scheduler's claim %s got PCI %s (port %s); its container's /dev has %v\n",
		pod.Name, dra.ExtendedResourceName, claim.Name, data.PCIAddress, data.PortID, seen)
	if !slices.Equal(seen, []string{uio}) {
		t.Errorf("pod %s's container sees %v in /dev, want exactly its own %s", pod.Name, seen, uio)
	}
	envOut, err := env.Exec(ctx, pod, "env")
	if err != nil {
		t.Fatal(err)
	}
	if want := dra.PCIDeviceEnv + "=" + data.PCIAddress; !slices.Contains(strings.Fields(envOut), want) {
		t.Errorf("pod %s's environment has no %s:\n%s", pod.Name, want, envOut)
	}
	if d, owner := kuryrNodeDevice(t, ctx, node.Name, data.PortID), dra.OwnerPrefix+string(claim.UID); d.State != v1alpha1.DPDKDeviceInUse || d.Owner != owner {
		t.Errorf("KuryrNode %s shows port %s %s, owner %q; want InUse by %s", node.Name, data.PortID, d.State, d.Owner, owner)
	}
	deleteAndWait(t, ctx, namespace, pod.Name)
	requireNoLeaks(t, ctx)
}
