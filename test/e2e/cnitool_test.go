package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// TestCNIToolRun is a cnitool-style run against the all-in-one: libcni
// runs the kuryr-cni a real node's DaemonSet installed, with the network
// configuration it installed there (what the node's containerd reads), for
// a pod of the management network and a DPDK interface whose sandbox the
// kubelet never makes (its ConfigMap volume does not exist, and the kubelet
// mounts volumes before it makes a sandbox), in a network namespace made
// where containerd makes its own; the node's kuryr-daemon serves it.
//   - ADD: the result lists eth0, net1 and dpdk0, dpdk0 with the PCI address
//     the KuryrPod records, and that device is bound to uio_pci_generic;
//   - CHECK, with the ADD's result as prevResult (libcni's cache), passes;
//   - DEL: the device is back on virtio-pci, no file on the node
//     (checkpoint, device-info) names the container, and the KuryrPod says
//     no interface is plugged;
//   - DEL again succeeds;
//   - GC: an ADD made through another result cache (a runtime that lost
//     its state: the GC's own client knows nothing of it) is undone by a
//     GC of the node's network whose valid attachments are the node
//     containerd's: device back on virtio-pci, no file naming it left,
//     and the KuryrPod says no interface is plugged (so the controller
//     need not wait out its release grace when the pod goes).
//
// Deleting the pod then leaves nothing behind.
func TestCNIToolRun(t *testing.T) {
	const namespace = "e2e-cnitool"
	ctx := setup(t, namespace, 4*time.Minute)
	node := env.Nodes[0]
	pod := dpdkPod(namespace, "cnitool")
	pod.Spec.NodeName = node.Name
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "held", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "does-not-exist"}}}})
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "held", MountPath: "/held"})
	pod = createPod(t, ctx, pod)

	dir := t.TempDir()
	tool, err := env.NewCNITool(node, "e2e-cnitool", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tool.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("network %q of %s (CNI %s), namespace %s on the node", tool.List.Name, node.Name, tool.List.CNIVersion, tool.NetNS)

	// ADD: the daemon waits for the pod's interfaces, then plugs them.
	const first = "cnitool0000000000000000000000001"
	rt := tool.RuntimeConf(pod, first)
	start := time.Now()
	r, err := tool.CNI.AddNetworkList(ctx, tool.List, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		t.Fatalf("ADD result %v: %v", r, err)
	}
	dpdk0 := findIface(kuryrPod(t, ctx, namespace, pod.Name), "dpdk0")
	var names []string
	pciInResult := ""
	for _, i := range res.Interfaces {
		names = append(names, i.Name)
		if i.Name == "dpdk0" {
			pciInResult = i.PciID
		}
	}
	if strings.Join(names, ",") != "eth0,net1,dpdk0" || pciInResult == "" || pciInResult != dpdk0.PCIAddress {
		t.Fatalf("ADD result interfaces %v, dpdk0 pciID %q; want eth0,net1,dpdk0 and the KuryrPod's %q", names, pciInResult, dpdk0.PCIAddress)
	}
	wantDriver(t, node, dpdk0.PCIAddress, pci.DriverUIO, "after ADD")
	t.Logf("ADD (with its wait for the pod's interfaces) took %v: %v; dpdk0 is %s on %s", time.Since(start).Round(time.Millisecond), names, dpdk0.PCIAddress, pci.DriverUIO)

	// CHECK against the cached result.
	if err := tool.CNI.CheckNetworkList(ctx, tool.List, rt); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}

	// DEL, and DEL again.
	if err := tool.CNI.DelNetworkList(ctx, tool.List, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	wantDriver(t, node, dpdk0.PCIAddress, "virtio-pci", "after DEL")
	if left := node.SandboxLeftovers(first); len(left) > 0 {
		t.Fatalf("after DEL of %s: %s", first, strings.Join(left, "; "))
	}
	wantUnplugged(t, kuryrPod(t, ctx, namespace, pod.Name), "after DEL")
	if err := tool.CNI.DelNetworkList(ctx, tool.List, rt); err != nil {
		t.Fatalf("DEL again: %v", err)
	}

	// An ADD whose DEL never comes, made through a cache the GC's client
	// does not read: only the plugin's GC can undo it.
	const forgotten = "cnitool0000000000000000000000002"
	if _, err := tool.WithCache(filepath.Join(dir, "lost-cache")).AddNetworkList(ctx, tool.List, tool.RuntimeConf(pod, forgotten)); err != nil {
		t.Fatalf("ADD of %s: %v", forgotten, err)
	}
	wantDriver(t, node, dpdk0.PCIAddress, pci.DriverUIO, "after the second ADD")
	valid, err := tool.RuntimeAttachments(tool.List.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := tool.CNI.GCNetworkList(ctx, tool.List, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
		t.Fatalf("GC (valid: containerd's %d attachments): %v", len(valid), err)
	}
	wantDriver(t, node, dpdk0.PCIAddress, "virtio-pci", "after GC")
	if left := node.SandboxLeftovers(forgotten); len(left) > 0 {
		t.Fatalf("after GC, of %s: %s", forgotten, strings.Join(left, "; "))
	}
	wantUnplugged(t, kuryrPod(t, ctx, namespace, pod.Name), "after GC")
	t.Logf("GC with containerd's %d attachments of %q valid undid %s", len(valid), tool.List.Name, forgotten)

	deleted := time.Now()
	deleteAndWait(t, ctx, namespace, pod.Name)
	t.Logf("pod deleted → pod and KuryrPod gone (ports released) %v", time.Since(deleted).Round(time.Millisecond))
	if err := tool.Close(); err != nil {
		t.Fatal(err)
	}
	requireNoLeaks(t, ctx)
}

// findIface is the KuryrPod's status of interface ifName.
func findIface(kp *v1alpha1.KuryrPod, ifName string) v1alpha1.InterfaceStatus {
	for _, i := range kp.Status.Interfaces {
		if i.IfName == ifName {
			return i
		}
	}
	return v1alpha1.InterfaceStatus{}
}

// wantUnplugged fails the test if kp says an interface is plugged.
func wantUnplugged(t *testing.T, kp *v1alpha1.KuryrPod, when string) {
	t.Helper()
	for _, s := range kp.Status.Interfaces {
		if s.State == v1alpha1.StatePlugged || s.BoundDriver != "" {
			t.Fatalf("%s: KuryrPod %s/%s says %s is %s (bound to %q)", when, kp.Namespace, kp.Name, s.IfName, s.State, s.BoundDriver)
		}
	}
}

// wantDriver fails the test unless the device at addr on node n is bound
// to want.
func wantDriver(t *testing.T, n *aio.Node, addr, want, when string) {
	t.Helper()
	if got := n.PCI.Driver(addr); got != want {
		t.Fatalf("%s: device %q bound to %q, want %s", when, addr, got, want)
	}
}
