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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// useMultusEnv starts an all-in-one with one real node running real Multus
// (aio.Options.Multus: deploy/overlays/all-in-one-multus, kuryr-daemon with
// --primary=false) and makes it the package's env for the rest of the test
// (useEnv).
func useMultusEnv(t *testing.T) {
	t.Helper()
	useEnv(t, aio.Options{Nodes: 1, RealNodes: true, Multus: true, Log: os.Stderr}, "Multus")
}

// useEnv starts an all-in-one of opts beside the package's own (what names
// what is special in it) and makes it the package's env for the rest of
// the test (the e2e tests run one at a time); it is torn down, and env
// restored, when the test ends.
func useEnv(t *testing.T, opts aio.Options, what string) {
	t.Helper()
	if opts.Multus {
		testenv.RequireMultusBins(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	e, err := aio.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start the all-in-one with %s: %v", what, err)
	}
	t.Logf("environment with %d real node(s) and %s (Multus %s) up in %.1f s", opts.Nodes, what, testenv.MultusVersion, time.Since(start).Seconds())
	prev := env
	env = e
	t.Cleanup(func() {
		env = prev
		if t.Failed() {
			dst := filepath.Join(os.TempDir(), "kuryr-e2e-"+strings.ToLower(strings.Fields(what)[0])+"-logs-"+e.ID)
			if err := e.SaveLogs(dst); err == nil {
				t.Logf("the processes' logs are kept in %s", dst)
			}
		}
		if err := e.Close(); err != nil {
			t.Errorf("tear down the all-in-one with %s: %v", what, err)
		}
		if _, err := os.Stat(e.StateDir); !os.IsNotExist(err) {
			t.Errorf("%s left after teardown (%v)", e.StateDir, err)
		}
	})
}

// Real Multus v4.2.3 is the node's CNI: containerd calls multus; multus
// calls kuryr-cni for eth0 (its clusterNetwork, kuryr's conflist) and for
// each NetworkAttachmentDefinition of the pod's networks annotation (the
// management network and a nested-dpdk one), and kuryr-daemon serves each
// call for the one interface it names. The pod gets eth0, net1 and dpdk0
// (bound to uio_pci_generic); the network-status annotation is written by
// Multus (the field's manager) and lists every interface with the MAC and
// IPs of its Neutron port. Multus passes a delegate CNIDeviceInfoFile only
// when it has a DeviceID for it (device plugin or DRA, through the kubelet's
// pod-resources API), which no delegate has here, so dpdk0's entry carries
// no device-info: the PCI address is in the CNI result Multus got and in
// the device-info file kuryr-daemon wrote on the node. A sandbox stopped
// under the running pod (containerd's DEL through Multus) leaves no file
// naming it (checkpoint, device-info, cached result of containerd or
// Multus), and the kubelet's new sandbox gets the three interfaces again
// through Multus. Deleting the pod then leaves nothing behind: no port,
// device, link, checkpoint, device-info file, cached result of containerd
// or Multus, or network namespace.
func TestRealMultusDelegatesEveryInterfaceToKuryr(t *testing.T) {
	useMultusEnv(t)
	const namespace = "e2e-multus"
	ctx := setup(t, namespace, 4*time.Minute)
	pod := createPod(t, ctx, dpdkPod(namespace, "multi"))
	waitReady(t, ctx, namespace, 2*time.Minute, pod.Name)
	pod = getPod(t, ctx, namespace, pod.Name)
	node := env.Node(pod.Spec.NodeName)
	eth0, net1, dpdk0 := checkMultiVIFPod(t, ctx, pod)

	// containerd called multus, and multus called kuryr-cni once per
	// interface, in the same sandbox.
	call := containerdADD(t, ctx, pod)
	delegates, err := env.MultusDelegateCalls(pod)
	if err != nil {
		t.Fatal(err)
	}
	gotDelegates := map[string]aio.CNICall{}
	for _, d := range delegates {
		fmt.Fprintf(os.Stderr, "e2e: multus called %s (network %s)\n", d, d.Network)
		if d.PluginType != "kuryr-cni" || d.ContainerID != call.ContainerID || d.NetNS != call.NetNS {
			t.Errorf("Multus' delegate call %s: want kuryr-cni in containerd's sandbox %s, %s", d, call.ContainerID, call.NetNS)
		}
		gotDelegates[d.IfName] = d
	}
	wantNetworks := map[string]string{"eth0": "kuryr", "net1": aio.MgmtNAD, "dpdk0": aio.DataPlaneNAD}
	if len(delegates) != len(wantNetworks) {
		t.Errorf("Multus made %d delegate ADDs, want %d (eth0, net1, dpdk0)", len(delegates), len(wantNetworks))
	}
	for ifName, network := range wantNetworks {
		if d, ok := gotDelegates[ifName]; !ok || d.Network != network {
			t.Errorf("Multus' ADD of %s: %+v, want one for network %s", ifName, d, network)
		}
	}
	if d := gotDelegates["dpdk0"]; d.Result == nil || len(d.Result.Interfaces) != 1 || d.Result.Interfaces[0].PciID != dpdk0.PCIAddress {
		t.Errorf("kuryr-cni's result for dpdk0 to Multus: %+v, want the interface with pciID %s", d.Result, dpdk0.PCIAddress)
	}

	// The network-status Multus wrote.
	raw := pod.Annotations[v1alpha1.NetworkStatusAnnotation]
	fmt.Fprintf(os.Stderr, "e2e: network-status of pod %s/%s written by Multus %s:\n%s\n", pod.Namespace, pod.Name, testenv.MultusVersion, raw)
	status, seen := networkStatus(t, pod)
	if m := annotationManager(pod.ManagedFields, v1alpha1.NetworkStatusAnnotation); !strings.HasPrefix(m, "multus") {
		t.Errorf("network-status is managed by %q, want Multus (its client's user agent)", m)
	}
	if len(status) != 3 || len(seen) != 3 {
		t.Errorf("network-status has %d entries for %d interfaces, want eth0, net1 and dpdk0", len(status), len(seen))
	}
	for _, want := range []struct {
		st      v1alpha1.InterfaceStatus
		network string
		dflt    bool
	}{{eth0, "kuryr", true}, {net1, namespace + "/" + aio.MgmtNAD, false}, {dpdk0, namespace + "/" + aio.DataPlaneNAD, false}} {
		s, ok := seen[want.st.IfName]
		var ips []string
		for _, c := range want.st.IPs {
			ips = append(ips, strings.Split(c, "/")[0])
		}
		if !ok || s.Name != want.network || s.Default != want.dflt || !strings.EqualFold(s.Mac, want.st.MAC) || !slices.Equal(s.IPs, ips) {
			t.Errorf("network-status %s: %+v; want network %s, default %v, MAC %s, IPs %v", want.st.IfName, s, want.network, want.dflt, want.st.MAC, ips)
		}
		if s.DeviceInfo != nil {
			t.Errorf("network-status %s has device-info %+v: Multus %s sets it only for a delegate with a DeviceID, and none has one here (docs/multus.md)",
				want.st.IfName, s.DeviceInfo, testenv.MultusVersion)
		}
	}

	// The PCI address reaches the node as kuryr-daemon's own device-info
	// file (named as Multus names its files).
	var di nadv1.DeviceInfo
	file := filepath.Join(node.DevinfoDir, strings.ReplaceAll(fmt.Sprintf("%s/%s-%s_%s", namespace, aio.DataPlaneNAD, call.ContainerID, "dpdk0"), "/", "-"))
	if b, err := os.ReadFile(file); err != nil || json.Unmarshal(b, &di) != nil || di.Pci == nil || di.Pci.PciAddress != dpdk0.PCIAddress {
		t.Errorf("device-info file %s: %+v (%v), want pci %s", file, di, err, dpdk0.PCIAddress)
	}

	// A sandbox DEL through Multus while the pod stays (its sandbox
	// stopped): nothing of that sandbox is left, and the kubelet's new
	// sandbox gets every interface again through Multus.
	old := call.ContainerID
	if err := env.StopSandbox(ctx, node, old); err != nil {
		t.Fatal(err)
	}
	var again aio.CNICall
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		c, err := env.ContainerdADD(pod)
		again = c
		return err == nil && c.ContainerID != old, nil
	})
	if err != nil {
		t.Fatalf("no ADD through Multus for a new sandbox after stopping %.12s…: %v", old, err)
	}
	waitReady(t, ctx, namespace, 2*time.Minute, pod.Name)
	fmt.Fprintf(os.Stderr, "e2e: sandbox %.12s… stopped (containerd's DEL through Multus); the kubelet's new sandbox: %s\n", old, again)
	if left := node.SandboxLeftovers(old); len(left) > 0 {
		t.Errorf("the DEL of sandbox %.12s… through Multus left: %s", old, strings.Join(left, "; "))
	}
	if delegates, err = env.MultusDelegateCalls(pod); err != nil {
		t.Fatal(err)
	}
	var ifNames []string
	for _, d := range delegates {
		if d.ContainerID == again.ContainerID {
			ifNames = append(ifNames, d.IfName)
		}
	}
	slices.Sort(ifNames)
	if !slices.Equal(ifNames, []string{"dpdk0", "eth0", "net1"}) {
		t.Errorf("Multus' delegate ADDs for the new sandbox: %v, want dpdk0, eth0, net1", ifNames)
	}

	deleteAndWait(t, ctx, namespace, pod.Name)
	requireNoLeaks(t, ctx)
}

// annotationManager is the manager of the field metadata.annotations[key]
// in managed ("" when none has it).
func annotationManager(managed []metav1.ManagedFieldsEntry, key string) string {
	field := `"f:` + key + `"`
	for _, m := range managed {
		if m.FieldsV1 != nil && strings.Contains(m.FieldsV1.GetRawString(), field) {
			return m.Manager
		}
	}
	return ""
}
