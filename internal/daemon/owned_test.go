package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestDPDKBindsOnlyThePodsRecordedDevice performs what a forged or wrong
// KuryrPod status would make the daemon do: bind a device the controller
// did not attach for the pod. The node's KuryrNode (which only the
// controller writes) records the victim pod's own port, with its device on
// the PCI bus, and a third device sits there recorded for nobody. Refused,
// each with CNI code 999 naming the pod's port and MAC and what the
// KuryrNode lists instead, never the victim's pod UID (nor its port, but
// where the pod's own status names it), with nothing bound and no
// checkpoint left:
//   - a pod whose status names the unrecorded device's MAC (its port
//     recorded nowhere);
//   - a pod whose status names the victim's device MAC with its own port;
//   - a pod whose status names the victim's port and MAC;
//   - a pod whose own port is recorded, with another MAC than the one its
//     status names (the victim's).
//
// Each refusal answers before the daemon's --interfaces-timeout (60 s
// here) ends: the cached KuryrPod says ACTIVE, the cached KuryrNode does
// not list the device as the pod's, and one read of the KuryrNode from the
// API server (exactly one per refused ADD) confirms it, so the ADD does
// not wait out the timeout for a record that will not come.
//
// The legitimate paths bind: the victim's own port (unpooled), a pod's
// port of the node's pool (given to it: InUse, its owner), a pod whose
// record is written after its ADD started, before its interface goes
// ACTIVE (the controller's order: the ADD waits, then binds), and a pod
// whose record the daemon's KuryrNode watch has not delivered yet when its
// KuryrPod's watch says ACTIVE (the watch held back: the API server's copy
// lists it, so the ADD binds without the watch).
func TestDPDKBindsOnlyThePodsRecordedDevice(t *testing.T) {
	n := newNode(t)
	n.specEdit = func(s *v1alpha1.KuryrPodSpec) { s.Interfaces = s.Interfaces[1:] } // net1 (DPDK) only
	const (
		strayPCI, strayMAC   = "0000:02:00.0", "fa:16:3e:00:0e:01"
		pooledPCI, pooledMAC = "0000:03:00.0", "fa:16:3e:00:0e:02"
		latePCI, lateMAC     = "0000:04:00.0", "fa:16:3e:00:0e:03"
		thiefMAC             = "fa:16:3e:00:0e:04"
		lagPCI, lagMAC       = "0000:05:00.0", "fa:16:3e:00:0e:05"
		interfacesTimeout    = 60 * time.Second
	)
	for pciAddr, mac := range map[string]string{dpdkPCI: dpdkMAC, strayPCI: strayMAC, pooledPCI: pooledMAC, latePCI: lateMAC, lagPCI: lagMAC} {
		must(t, n.sim.AddVirtioNet(pciAddr, mac))
	}
	gate := &testenv.WatchGate{Resource: "kuryrnodes"}
	n.startDaemonAs(gate.Wrap(env.Config), interfacesTimeout, true)
	t.Cleanup(gate.Release) // before the daemon stops
	victim, _ := n.createPodMACs("victim", v1alpha1.StateActive, eth0MAC, dpdkMAC)
	victimPort := "port-" + n.podName("victim")

	sandbox := 0
	// create makes a pod of net1 only in state, its status and its
	// KuryrNode record edited, and returns its runtime configuration.
	create := func(pod string, state v1alpha1.InterfaceState, mac string, statusEdit func(*v1alpha1.InterfaceStatus), attachedEdit func(types.UID, []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice) *libcni.RuntimeConf {
		t.Helper()
		n.statusEdit = func(st *v1alpha1.KuryrPodStatus) {
			for i := range st.Interfaces {
				if statusEdit != nil && st.Interfaces[i].IfName == "net1" {
					statusEdit(&st.Interfaces[i])
				}
			}
		}
		n.attachedEdit = attachedEdit
		defer func() { n.statusEdit, n.attachedEdit = nil, nil }()
		p, _ := n.createPodMACs(pod, state, eth0MAC, mac)
		sandbox++
		return rtFor(p, fmt.Sprintf("%032x", 0x5a0d0000+sandbox), n.podNS.Path())
	}
	// answeredIn is how long add's last ADD took to answer, liveReads how
	// many reads of the KuryrNode from the API server the daemon made
	// meanwhile.
	var (
		answeredIn time.Duration
		liveReads  int
	)
	add := func(pod string, mac string, statusEdit func(*v1alpha1.InterfaceStatus), attachedEdit func(types.UID, []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice) (*libcni.RuntimeConf, error) {
		t.Helper()
		rt := create(pod, v1alpha1.StateActive, mac, statusEdit, attachedEdit)
		start, reads := time.Now(), gate.Reads()
		_, err := n.cni.AddNetworkList(n.ctx, n.list, rt)
		answeredIn, liveReads = time.Since(start), gate.Reads()-reads
		return rt, err
	}
	refused := func(what string, rt *libcni.RuntimeConf, err error, want string, hidePort bool) {
		t.Helper()
		cniCode(t, what, err, cniapi.CodeInternal)
		if answeredIn >= interfacesTimeout {
			t.Fatalf("%s: refused after %s, not before the %s --interfaces-timeout", what, answeredIn, interfacesTimeout)
		}
		if liveReads != 1 {
			t.Fatalf("%s: %d reads of the KuryrNode from the API server, want the one that confirms the refusal", what, liveReads)
		}
		for _, s := range []string{"is not recorded as attached to node " + n.name + " for this pod", want} {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("%s: %q does not say %q", what, err, s)
			}
		}
		if strings.Contains(err.Error(), string(victim.UID)) || hidePort && strings.Contains(err.Error(), victimPort) {
			t.Fatalf("%s: %q names the victim pod or its port", what, err)
		}
		for _, a := range []string{dpdkPCI, strayPCI, pooledPCI, latePCI} {
			if drv := n.sim.Driver(a); drv != pci.DriverVirtioPCI {
				t.Fatalf("%s: device %s bound to %q", what, a, drv)
			}
		}
		if recs := n.records(rt.ContainerID); len(recs) != 0 {
			t.Fatalf("%s: checkpoints left: %+v", what, recs)
		}
		must(t, n.cni.DelNetworkList(n.ctx, n.list, rt))
	}
	bound := func(what string, rt *libcni.RuntimeConf, err error, addr string) {
		t.Helper()
		if err != nil {
			t.Fatalf("ADD of %s: %v", what, err)
		}
		if drv := n.sim.Driver(addr); drv != pci.DriverUIO {
			t.Fatalf("%s: device %s on %q after the ADD, want %s", what, addr, drv, pci.DriverUIO)
		}
		must(t, n.cni.DelNetworkList(n.ctx, n.list, rt))
	}
	none := func(types.UID, []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice { return nil }

	rt, err := add("stray", strayMAC, nil, none)
	refused("a device recorded for nobody", rt, err, "lists no port port-"+n.podName("stray"), true)

	rt, err = add("thief-mac", dpdkMAC, nil, none)
	refused("another pod's device by its MAC", rt, err, "lists MAC "+dpdkMAC+" for another port", true)

	rt, err = add("thief-port", dpdkMAC, func(s *v1alpha1.InterfaceStatus) { s.PortID = victimPort }, none)
	refused("another pod's port and MAC", rt, err, "as another consumer's", false)

	rt, err = add("thief-swap", dpdkMAC, nil, func(_ types.UID, devs []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice {
		devs[0].MAC = thiefMAC
		return devs
	})
	refused("its own port with another device's MAC", rt, err, "with another MAC than "+dpdkMAC, true)

	// The legitimate paths.
	rt = rtFor(victim, sandboxID, n.podNS.Path())
	_, err = n.cni.AddNetworkList(n.ctx, n.list, rt)
	bound("the victim's own port", rt, err, dpdkPCI)

	rt, err = add("pooled", pooledMAC, nil, func(_ types.UID, devs []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice {
		devs[0].Unpooled = false // a pool's port the controller gave the pod
		return devs
	})
	bound("a pool's port given to the pod", rt, err, pooledPCI)

	// The record written after the ADD started, before the interface is
	// ACTIVE.
	var late []v1alpha1.DPDKDevice
	create("late", v1alpha1.StatePending, lateMAC, nil, func(_ types.UID, devs []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice {
		late = devs
		return nil
	})
	done := n.addStillWaiting(t, "while the pod's port was pending and not recorded")
	n.recordAttached(late...)
	kp := n.kuryrPod("late")
	findStatus(kp, "net1").State = v1alpha1.StateActive
	must(t, n.c.Status().Update(n.ctx, kp))
	bound("a pod whose record came after its ADD started", n.rt(), <-done, latePCI)

	// The record written before ACTIVE, but the daemon's KuryrNode watch
	// held back: its cache does not list the port when the KuryrPod's
	// watch says ACTIVE.
	gate.Hold()
	rt = create("lagging", v1alpha1.StateActive, lagMAC, nil, nil)
	_, err = n.cni.AddNetworkList(n.ctx, n.list, rt)
	if _, ok := n.daemon.cachedNode().DPDKDevice("port-" + n.podName("lagging")); ok {
		t.Fatal("the KuryrNode's watch delivered the lagging pod's record while held: the test proves nothing")
	}
	gate.Release()
	bound("a pod whose record the KuryrNode's watch had not delivered", rt, err, lagPCI)
	n.wantOwnerReads(map[string]float64{ownerReadRefused: 4, ownerReadListed: 1, ownerReadFailed: 0})
}

// wantOwnerReads checks kuryr_daemon_owner_reads_total of n's daemon.
func (n *node) wantOwnerReads(want map[string]float64) {
	n.t.Helper()
	for result, w := range want {
		if got := testutil.ToFloat64(n.daemon.metrics.ownerReads.WithLabelValues(result)); got != w {
			n.t.Errorf("kuryr_daemon_owner_reads_total{result=%q} = %v, want %v", result, got, w)
		}
	}
}

// TestDPDKFailedOwnerReadFallsBackToTheWatch: when the one read of the
// KuryrNode from the API server that an ADD may make fails (here answered
// 500 on its way), the ADD neither refuses nor reads again, however often
// the pod's KuryrPod changes meanwhile: it waits on the KuryrNode's watch
// (held back until then), and binds the device once the watch brings the
// pod's record.
func TestDPDKFailedOwnerReadFallsBackToTheWatch(t *testing.T) {
	n := newNode(t)
	n.specEdit = func(s *v1alpha1.KuryrPodSpec) { s.Interfaces = s.Interfaces[1:] } // net1 (DPDK) only
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	gate := &testenv.WatchGate{Resource: "kuryrnodes"}
	n.startDaemonAs(gate.Wrap(env.Config), 60*time.Second, true)
	t.Cleanup(gate.Release) // before the daemon stops
	eventually(t, "the daemon ready (its informers synced)", func() (bool, string) {
		err := n.daemon.Ready()
		return err == nil, fmt.Sprint(err)
	})

	gate.Hold()
	gate.FailReads(true)
	n.createPod("unconfirmed", v1alpha1.StateActive) // recorded, then ACTIVE
	done := n.addAsync()
	eventually(t, "the ADD's read of the KuryrNode", func() (bool, string) {
		return gate.Reads() == 1, fmt.Sprintf("%d reads", gate.Reads())
	})
	// The KuryrPod changes, waking the waiting ADD each time.
	for i := range 3 {
		kp := n.kuryrPod("unconfirmed")
		kp.Status.Summary = fmt.Sprintf("touched %d", i)
		must(t, n.c.Status().Update(n.ctx, kp))
	}
	key := keyOf("default", n.podName("unconfirmed"))
	eventually(t, "the daemon's cache seeing the last change", func() (bool, string) {
		var kp v1alpha1.KuryrPod
		must(t, n.daemon.client.Get(n.ctx, key, &kp))
		return kp.Status.Summary == "touched 2", kp.Status.Summary
	})
	select {
	case a := <-done:
		t.Fatalf("ADD answered while the KuryrNode's watch was held and its read failed: %v", a.err)
	case <-time.After(500 * time.Millisecond):
	}
	gate.Release()
	a := <-done
	if a.err != nil {
		t.Fatalf("ADD once the watch brought the record: %v", a.err)
	}
	if drv := n.sim.Driver(dpdkPCI); drv != pci.DriverUIO {
		t.Fatalf("device %s on %q after the ADD, want %s", dpdkPCI, drv, pci.DriverUIO)
	}
	if r := gate.Reads(); r != 1 {
		t.Fatalf("%d reads of the KuryrNode from the API server during one ADD, want 1", r)
	}
	n.wantOwnerReads(map[string]float64{ownerReadFailed: 1, ownerReadListed: 0, ownerReadRefused: 0})
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
}

// TestUnowned: which KuryrNode entries make a pod's DPDK interface its
// own, and what is said otherwise (the pod's own port and MAC only; the
// other consumer's owner and port go to the detail, for the log).
func TestUnowned(t *testing.T) {
	t.Parallel()
	const uid, mac = types.UID("u-1"), "fa:16:3e:00:00:01"
	st := v1alpha1.InterfaceStatus{IfName: "net1", PortID: "p1", MAC: "FA:16:3E:00:00:01"}
	mine := v1alpha1.DPDKDevice{PortID: "p1", MAC: mac, State: v1alpha1.DPDKDeviceInUse, Owner: v1alpha1.DPDKOwnerPod + string(uid), Unpooled: true}
	with := func(edit func(*v1alpha1.DPDKDevice)) *v1alpha1.KuryrNodeStatus {
		d := mine
		edit(&d)
		return &v1alpha1.KuryrNodeStatus{DPDKDevices: []v1alpha1.DPDKDevice{d}}
	}
	for _, tc := range []struct {
		name          string
		node          *v1alpha1.KuryrNodeStatus
		st            v1alpha1.InterfaceStatus
		problem, hide string
	}{
		{"the pod's, MAC in another case", with(func(*v1alpha1.DPDKDevice) {}), st, "", ""},
		{"a pool port given to the pod", with(func(d *v1alpha1.DPDKDevice) { d.Unpooled = false }), st, "", ""},
		{"no KuryrNode entries", &v1alpha1.KuryrNodeStatus{}, st, "lists no port p1", ""},
		{"the MAC on another port", with(func(d *v1alpha1.DPDKDevice) { d.PortID, d.Owner = "p9", "pod/u-9" }), st,
			"lists MAC " + mac + " for another port", "p9"},
		{"another pod's", with(func(d *v1alpha1.DPDKDevice) { d.Owner = "pod/u-9" }), st, "as another consumer's", "u-9"},
		{"a claim's", with(func(d *v1alpha1.DPDKDevice) { d.Owner = v1alpha1.DPDKOwnerClaim + "claim-7" }), st, "as another consumer's", "claim-7"},
		{"not given yet", with(func(d *v1alpha1.DPDKDevice) { d.Owner, d.State = "", v1alpha1.DPDKDeviceReady }), st,
			"as not given to any consumer yet (Ready)", ""},
		{"owned but not in use", with(func(d *v1alpha1.DPDKDevice) { d.State = v1alpha1.DPDKDeviceAttaching }), st,
			"as Attaching, not in use by the pod", ""},
		{"another MAC", with(func(d *v1alpha1.DPDKDevice) { d.MAC = "fa:16:3e:00:00:02" }), st,
			"with another MAC than " + mac, "fa:16:3e:00:00:02"},
		{"a MAC that does not parse (bindingRequest refuses it)", &v1alpha1.KuryrNodeStatus{},
			v1alpha1.InterfaceStatus{PortID: "p1", MAC: "nope"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problem, detail := unowned(tc.node, uid, tc.st)
			if tc.problem == "" && problem != "" || !strings.Contains(problem, tc.problem) {
				t.Fatalf("problem %q, want %q", problem, tc.problem)
			}
			if tc.hide != "" && (strings.Contains(problem, tc.hide) || !strings.Contains(detail, tc.hide)) {
				t.Fatalf("problem %q, detail %q: want %q in the detail only", problem, detail, tc.hide)
			}
		})
	}
}

func TestWaitersChangedAllWakesEveryKey(t *testing.T) {
	t.Parallel()
	w := newWaiters()
	a, b := w.next(keyOf("ns", "a")), w.next(keyOf("other", "b"))
	w.changedAll()
	for name, c := range map[string]<-chan struct{}{"a": a, "b": b} {
		select {
		case <-c:
		default:
			t.Fatalf("waiter %s not woken", name)
		}
	}
	if w.next(keyOf("ns", "a")) == a {
		t.Fatal("a closed channel was handed out again")
	}
}
