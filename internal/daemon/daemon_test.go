package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

func cniCode(t *testing.T, what string, err error, code uint) {
	t.Helper()
	var e *cnitypes.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("%s: error %v, want CNI code %d", what, err, code)
	}
}

// addAnswer is what an ADD made by addAsync returned.
type addAnswer struct {
	res cnitypes.Result
	err error
}

// addAsync runs the pod's ADD through libcni in the background; its answer
// comes on the channel.
func (n *node) addAsync() <-chan addAnswer {
	done := make(chan addAnswer, 1)
	go func() {
		res, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt())
		done <- addAnswer{res, err}
	}()
	return done
}

// TestAddCheckDelThroughLibcni drives the real kuryr-cni shim through libcni
// as containerd does, against a daemon on a real API server, real network
// namespaces and a simulated PCI bus: eth0 (MACVLAN) and a DPDK device. ADD
// waits for the interfaces event-driven; DEL works after a daemon restart;
// DEL again and GC are fine.
func TestAddCheckDelThroughLibcni(t *testing.T) {
	n := newNode(t)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	stop := n.startDaemon(30 * time.Second)
	_, kp := n.createPod("vnf", v1alpha1.StatePending)

	// The ADD waits: the interfaces are still Pending in the cloud.
	done := n.addAsync()
	select {
	case a := <-done:
		t.Fatalf("ADD returned before the interfaces were ACTIVE: %v %v", a.res, a.err)
	case <-time.After(700 * time.Millisecond):
	}
	activated := time.Now()
	for i := range kp.Status.Interfaces {
		kp.Status.Interfaces[i].State = v1alpha1.StateActive
	}
	must(t, n.c.Status().Update(n.ctx, kp))
	a := <-done
	if a.err != nil {
		t.Fatalf("ADD: %v", a.err)
	}
	t.Logf("ADD returned %s after the interfaces became ACTIVE", time.Since(activated))
	res, err := current.NewResultFromResult(a.res)
	must(t, err)

	// The result: both interfaces, the DPDK one with its PCI address, and
	// both sets of addresses.
	if len(res.Interfaces) != 2 || res.Interfaces[0].Name != "eth0" || res.Interfaces[0].Mac != eth0MAC ||
		res.Interfaces[1].Name != "net1" || res.Interfaces[1].PciID != dpdkPCI || res.Interfaces[1].Mac != dpdkMAC {
		t.Fatalf("result interfaces %+v", res.Interfaces)
	}
	if len(res.IPs) != 2 || res.IPs[0].Address.String() != "10.1.0.5/16" || res.IPs[1].Address.String() != "10.3.0.7/24" || *res.IPs[1].Interface != 1 {
		t.Fatalf("result IPs %+v", res.IPs)
	}

	// The pod namespace has eth0 with the port's MAC, address and default route.
	mac, addrs, via := n.podLink("eth0")
	if mac != eth0MAC || !slices.Equal(addrs, []string{"10.1.0.5/16"}) || via != "10.1.0.1" {
		t.Fatalf("pod eth0: mac %q addrs %v default via %q", mac, addrs, via)
	}
	// The device is bound to uio_pci_generic, with its device-info file.
	if drv := n.sim.Driver(dpdkPCI); drv != "uio_pci_generic" {
		t.Fatalf("device %s bound to %q, want uio_pci_generic", dpdkPCI, drv)
	}
	devInfo := binding.DeviceInfoPath(n.dir, "default/dataplane", sandboxID, "net1")
	di, err := binding.ReadDeviceInfo(binding.DeviceInfoDir(n.dir), devInfo)
	if err != nil || di.Type != "pci" || di.Version != "1.1.0" || di.PCI == nil || di.PCI.PCIAddress != dpdkPCI {
		t.Fatalf("device-info %s = %+v, %v", devInfo, di, err)
	}
	// The KuryrPod says Plugged, with the PCI address and drivers.
	got := n.kuryrPod("vnf")
	st := findStatus(got, "net1")
	if st.State != v1alpha1.StatePlugged || st.PCIAddress != dpdkPCI || st.OriginalDriver != "virtio-pci" || st.BoundDriver != "uio_pci_generic" ||
		findStatus(got, "eth0").State != v1alpha1.StatePlugged || got.Status.Summary != "2/2 plugged" {
		t.Fatalf("KuryrPod status %+v", got.Status)
	}
	// The pod's network-status lists both, the DPDK one with device-info.
	var pod corev1.Pod
	must(t, n.c.Get(n.ctx, types.NamespacedName{Namespace: "default", Name: n.podName("vnf")}, &pod))
	var ns []nadv1.NetworkStatus
	must(t, json.Unmarshal([]byte(pod.Annotations[v1alpha1.NetworkStatusAnnotation]), &ns))
	if len(ns) != 2 || ns[0].Name != "kuryr" || !ns[0].Default || ns[0].Interface != "eth0" || ns[1].Name != "default/dataplane" ||
		ns[1].DeviceInfo == nil || ns[1].DeviceInfo.Pci.PciAddress != dpdkPCI || !slices.Equal(ns[1].IPs, []string{"10.3.0.7"}) {
		t.Fatalf("network-status %s", pod.Annotations[v1alpha1.NetworkStatusAnnotation])
	}

	// CHECK passes; an ADD retried (the runtime lost the answer) succeeds too.
	must(t, n.cni.CheckNetworkList(n.ctx, n.list, n.rt()))
	if _, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt()); err != nil {
		t.Fatalf("retried ADD: %v", err)
	}

	// The daemon restarts between ADD and DEL: the new one works from the
	// checkpoints.
	stop()
	n.startDaemon(30 * time.Second)
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
	if mac, _, _ := n.podLink("eth0"); mac != "" {
		t.Fatalf("eth0 still in the pod after DEL")
	}
	if drv := n.sim.Driver(dpdkPCI); drv != "virtio-pci" {
		t.Fatalf("device bound to %q after DEL, want virtio-pci back", drv)
	}
	if n.sim.Netdev(dpdkPCI) == "" {
		t.Fatalf("device's netdev did not come back after DEL")
	}
	if _, err := os.Stat(devInfo); !os.IsNotExist(err) {
		t.Fatalf("device-info %s still there after DEL: %v", devInfo, err)
	}
	got = n.kuryrPod("vnf")
	for _, s := range got.Status.Interfaces {
		if s.State != v1alpha1.StateActive || s.BoundDriver != "" {
			t.Fatalf("after DEL interface %s is %s bound to %q; want Active, unbound (the controller may release it)", s.IfName, s.State, s.BoundDriver)
		}
	}
	if left := n.checkpoints(); len(left) != 0 {
		t.Fatalf("checkpoints left after DEL: %v", left)
	}
	// DEL again, with nothing left, succeeds.
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
}

// TestAddPlugsInterfacesAtOnce: one ADD plugs its interfaces at once, not
// one after the other. The DPDK interface comes first in the KuryrPod and
// its device is not in the VM yet: eth0 is in the pod while the DPDK one
// still waits for its device, and once the device appears the ADD returns
// both, in the KuryrPod's order.
func TestAddPlugsInterfacesAtOnce(t *testing.T) {
	n := newNode(t)
	n.specEdit = func(s *v1alpha1.KuryrPodSpec) { slices.Reverse(s.Interfaces) }
	n.startDaemon(30 * time.Second)
	n.createPod("vnf", v1alpha1.StateActive)
	done := n.addAsync()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if mac, _, _ := n.podLink("eth0"); mac == eth0MAC {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("eth0 not in the pod 20 s into the ADD while the DPDK interface waits for its device: the interfaces are plugged one after the other")
		}
		select {
		case a := <-done:
			t.Fatalf("ADD returned before the DPDK device appeared: %v %v", a.res, a.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	a := <-done
	if a.err != nil {
		t.Fatalf("ADD: %v", a.err)
	}
	res, err := current.NewResultFromResult(a.res)
	must(t, err)
	if len(res.Interfaces) != 2 || res.Interfaces[0].Name != "net1" || res.Interfaces[0].PciID != dpdkPCI ||
		res.Interfaces[1].Name != "eth0" || res.Interfaces[1].Mac != eth0MAC {
		t.Fatalf("result interfaces %+v", res.Interfaces)
	}
	if drv := n.sim.Driver(dpdkPCI); drv != "uio_pci_generic" {
		t.Fatalf("device %s bound to %q, want uio_pci_generic", dpdkPCI, drv)
	}
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
}

// TestGCUnplugsWhatTheRuntimeForgot: a GC for another network leaves the
// attachments alone; GC of their own network with no valid attachment
// undoes an ADD whose DEL never came (made through another libcni result
// cache, so that libcni's own DEL of cached attachments is not what undoes
// it), and the pod's KuryrPod then says so
// as after a DEL (interfaces Active, no bound driver), so that the
// controller need not wait out --release-grace when the pod goes.
func TestGCUnplugsWhatTheRuntimeForgot(t *testing.T) {
	n := newNode(t)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemon(30 * time.Second)
	n.createPod("gc", v1alpha1.StateActive)
	// The ADD goes through another result cache, as from a runtime that
	// lost its state: the GC's libcni then has no cached attachment to
	// DEL first, and only kuryr-cni's GC can undo it.
	lost := libcni.NewCNIConfigWithCacheDir([]string{filepath.Join(n.dir, "bin")}, filepath.Join(n.dir, "lost-cache"), nil)
	if _, err := lost.AddNetworkList(n.ctx, n.list, n.rt()); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	other, err := libcni.NetworkConfFromBytes([]byte(fmt.Sprintf(
		`{"cniVersion":"1.1.0","name":"other","plugins":[{"type":"kuryr-cni","daemonSocket":%q,"driver":"nested-dpdk"}]}`, n.socket)))
	must(t, err)
	must(t, n.cni.GCNetworkList(n.ctx, other, &libcni.GCArgs{}))
	if drv := n.sim.Driver(dpdkPCI); drv != "uio_pci_generic" {
		t.Fatalf("a GC of network other rebound network kuryr's device to %q", drv)
	}
	if mac, _, _ := n.podLink("eth0"); mac != eth0MAC {
		t.Fatalf("a GC of network other removed network kuryr's eth0")
	}
	must(t, n.cni.GCNetworkList(n.ctx, n.list, &libcni.GCArgs{ValidAttachments: []cnitypes.GCAttachment{{ContainerID: "another", IfName: "eth0"}}}))
	if drv := n.sim.Driver(dpdkPCI); drv != "virtio-pci" {
		t.Fatalf("GC left the device bound to %q", drv)
	}
	if mac, _, _ := n.podLink("eth0"); mac != "" {
		t.Fatalf("GC left eth0 in the pod")
	}
	for _, s := range n.kuryrPod("gc").Status.Interfaces {
		if s.State != v1alpha1.StateActive || s.BoundDriver != "" {
			t.Fatalf("after GC interface %s is %s bound to %q; want Active, unbound", s.IfName, s.State, s.BoundDriver)
		}
	}
}

// TestGCKeepsWhatANewerSandboxHolds: a GC that undoes an old sandbox's
// attachments of a pod whose newer sandbox (kept by the GC) holds net1
// leaves net1 Plugged on the KuryrPod, since the newer sandbox has it; eth0,
// which the newer sandbox does not hold, goes back to Active.
func TestGCKeepsWhatANewerSandboxHolds(t *testing.T) {
	n := newNode(t)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemon(30 * time.Second)
	pod, _ := n.createPod("resandboxed", v1alpha1.StateActive)
	lost := libcni.NewCNIConfigWithCacheDir([]string{filepath.Join(n.dir, "bin")}, filepath.Join(n.dir, "lost-cache"), nil)
	if _, err := lost.AddNetworkList(n.ctx, n.list, n.rt()); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	// The newer sandbox's record of net1, as its ADD leaves one (its
	// device elsewhere: only the record matters to the GC).
	const newer = "5a0d00000000000000000000000000ff"
	store, err := checkpoint.New(n.ckptDir)
	must(t, err)
	must(t, store.Put(checkpoint.Record{ContainerID: newer, IfName: "net1", Kind: checkpoint.KindDPDK, MAC: "fa:16:3e:00:00:99",
		Network: n.list.Name, PodUID: string(pod.UID), PCIAddress: "0000:09:00.0", OriginalDriver: "virtio-pci", TargetDriver: "uio_pci_generic"}))
	must(t, n.cni.GCNetworkList(n.ctx, n.list, &libcni.GCArgs{ValidAttachments: []cnitypes.GCAttachment{{ContainerID: newer, IfName: "eth0"}}}))
	if drv := n.sim.Driver(dpdkPCI); drv != "virtio-pci" {
		t.Fatalf("GC left the old sandbox's device bound to %q", drv)
	}
	for _, s := range n.kuryrPod("resandboxed").Status.Interfaces {
		want := map[string]v1alpha1.InterfaceState{"eth0": v1alpha1.StateActive, "net1": v1alpha1.StatePlugged}[s.IfName]
		if s.State != want {
			t.Errorf("after GC KuryrPod interface %s is %s, want %s", s.IfName, s.State, want)
		}
	}
}

// TestAddErrors: each failure is a CNI error with the right code and a
// message that says what is wrong.
func TestAddErrors(t *testing.T) {
	n := newNode(t)
	n.startDaemon(2 * time.Second)

	// No KuryrPod at all (no controller?): try again later.
	n.pod = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "default", UID: "00000000-0000-4000-8000-00000000beef"}}
	_, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt())
	cniCode(t, "ADD without a KuryrPod", err, cniapi.CodeTryAgainLater)

	// The controller found the request invalid: bad config, with its reason.
	_, kp := n.createPod("invalid", v1alpha1.StatePending)
	meta.SetStatusCondition(&kp.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionSpecValid, Status: metav1.ConditionFalse,
		Reason: "NetworkNotFound", Message: "NetworkAttachmentDefinition default/nope does not exist"})
	must(t, n.c.Status().Update(n.ctx, kp))
	_, err = n.cni.AddNetworkList(n.ctx, n.list, n.rt())
	cniCode(t, "ADD of an invalid request", err, cniapi.CodeBadConfig)

	// Interfaces ACTIVE but the DPDK device never shows up in this VM.
	n.createPod("nodevice", v1alpha1.StateActive)
	ctx, cancel := context.WithTimeout(n.ctx, 60*time.Second)
	defer cancel()
	_, err = n.cni.AddNetworkList(ctx, n.list, n.rt())
	cniCode(t, "ADD with a device that never appears", err, cniapi.CodeTryAgainLater)
	// The failed ADD is followed by DEL, as runtimes do; nothing is left.
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
	if mac, _, _ := n.podLink("eth0"); mac != "" {
		t.Fatalf("eth0 left in the pod after a failed ADD and its DEL")
	}
	if left := n.checkpoints(); len(left) != 0 {
		t.Fatalf("checkpoints left: %v", left)
	}
}

// TestAddWaitsForThePlan: a KuryrPod the controller has made but not yet
// planned (no SpecValid condition: its interface list may be empty) is not
// taken for "no interfaces": the ADD waits, then plugs what the plan says.
func TestAddWaitsForThePlan(t *testing.T) {
	n := newNode(t)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemon(30 * time.Second)
	_, kp := n.createPod("unplanned", v1alpha1.StateActive)
	planned := kp.Status.DeepCopy()
	kp.Status = v1alpha1.KuryrPodStatus{}
	must(t, n.c.Status().Update(n.ctx, kp))

	done := n.addStillWaiting(t, "before the controller recorded its plan")
	kp.Status = *planned
	must(t, n.c.Status().Update(n.ctx, kp))
	if err := <-done; err != nil {
		t.Fatalf("ADD after the plan: %v", err)
	}
	if st := findStatus(n.kuryrPod("unplanned"), "net1"); st.State != v1alpha1.StatePlugged {
		t.Fatalf("net1 %+v, want Plugged", st)
	}
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
}

// TestDeviceTimeoutReachesDEL: --device-timeout bounds the binding's own
// waits too: a DEL whose rebind never completes (nothing acts on the sysfs
// writes any more) fails, try again later, after the configured timeout and
// not after a fixed 10 s.
func TestDeviceTimeoutReachesDEL(t *testing.T) {
	n := newNode(t)
	n.deviceTimeout = 1500 * time.Millisecond
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemon(30 * time.Second)
	n.createPod("slowdel", v1alpha1.StateActive)
	if _, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt()); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	must(t, n.sim.Close())
	start := time.Now()
	err := n.cni.DelNetworkList(n.ctx, n.list, n.rt())
	took := time.Since(start)
	cniCode(t, "DEL with a rebind that never completes", err, cniapi.CodeTryAgainLater)
	if took < 1500*time.Millisecond || took > 8*time.Second {
		t.Fatalf("DEL gave up after %s, want about the 1.5s --device-timeout", took)
	}
	if left := n.checkpoints(); len(left) != 1 {
		t.Fatalf("checkpoints after the failed DEL: %v, want the DPDK one kept for a retry", left)
	}
}

// TestAddWaitingReturnsWhenThePodGoes: a pod deleted while its ADD waits for
// the cloud (kuryr-controller then deletes its KuryrPod) gets its answer at
// once, not when the wait times out: the runtime holds the sandbox, and with
// it the pod's deletion, until the ADD returns.
func TestAddWaitingReturnsWhenThePodGoes(t *testing.T) {
	n := newNode(t)
	n.startDaemon(30 * time.Second)
	_, kp := n.createPod("going", v1alpha1.StatePending)

	done := n.addStillWaiting(t, "while the interfaces were pending")
	deleted := time.Now()
	must(t, n.c.Delete(n.ctx, kp))
	select {
	case err := <-done:
		cniCode(t, "ADD of a pod whose KuryrPod was deleted", err, cniapi.CodeInternal)
		if !strings.Contains(err.Error(), "deleted while its ADD waited") {
			t.Errorf("ADD error %q does not say the pod was deleted", err)
		}
		t.Logf("ADD answered %s after the KuryrPod's deletion: %v", time.Since(deleted).Round(time.Millisecond), err)
	case <-time.After(10 * time.Second):
		t.Fatal("ADD still waiting 10 s after the KuryrPod was deleted (the wait's timeout is 30 s)")
	}
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
}

// addStillWaiting starts an ADD in the background and fails t ("ADD
// answered (…) <when>") when it answers within 700 ms, while it should be
// waiting; the channel gets its answer.
func (n *node) addStillWaiting(t *testing.T, when string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt())
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("ADD answered (%v) %s", err, when)
	case <-time.After(700 * time.Millisecond):
	}
	return done
}
