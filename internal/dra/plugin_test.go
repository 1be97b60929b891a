package dra

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

func hasDevices(want ...string) func([]resourceapi.Device) bool {
	return func(ds []resourceapi.Device) bool {
		got := names(ds)
		if len(got) != len(want) {
			return false
		}
		for i := range want {
			if got[i] != DeviceNamePrefix+want[i] {
				return false
			}
		}
		return true
	}
}

// TestPublishesAndRepublishes: the plugin publishes its node's pool on the
// API server from the KuryrNode and the PCI bus, and republishes when the
// KuryrNode changes and when a device is hot-plugged or unplugged (the
// resync is minutes away, so only the events can do it).
func TestPublishesAndRepublishes(t *testing.T) {
	n := newNode(t)
	n.withPortA()
	ds := n.waitSlice("port A", hasDevices(portA))
	if got := str(ds[0].Attributes[AttrPCIAddress]); got != pciA {
		t.Errorf("pciAddress %q, want %s", got, pciA)
	}
	if got := str(ds[0].Attributes[AttrNetworkID]); got != "net-"+portA[:4] {
		t.Errorf("networkID %q", got)
	}

	// B is listed before Nova's attach shows in the VM: not published
	// until its device appears.
	n.setDevices(dev(portA, macA, v1alpha1.DPDKDeviceReady, ""), dev(portB, macB, v1alpha1.DPDKDeviceReady, ""))
	time.Sleep(200 * time.Millisecond)
	n.waitSlice("still port A only", hasDevices(portA))
	must(t, n.sim.AddVirtioNet(pciB, macB))
	n.waitSlice("ports A and B after B's hot-plug", hasDevices(portA, portB))
	must(t, n.sim.Remove(pciB))
	n.waitSlice("port A only after B's unplug", hasDevices(portA))

	// A pod took A: no longer advertised.
	n.setDevices(dev(portA, macA, v1alpha1.DPDKDeviceInUse, "pod/p1"), dev(portB, macB, v1alpha1.DPDKDeviceReady, ""))
	n.waitSlice("no device once a pod owns A", hasDevices())
}

// withPortA plugs port A's device, lists it Ready in the KuryrNode and
// starts the driver as the API server's admin.
func (n *node) withPortA() {
	n.t.Helper()
	must(n.t, n.sim.AddVirtioNet(pciA, macA))
	n.setDevices(dev(portA, macA, v1alpha1.DPDKDeviceReady, ""))
	n.start(env.Config)
}

// giveA shows port A InUse by claim c in the KuryrNode, as the controller
// does once it gave the port to the claim.
func (n *node) giveA(c *resourceapi.ResourceClaim) {
	n.t.Helper()
	n.setDevices(dev(portA, macA, v1alpha1.DPDKDeviceInUse, OwnerPrefix+string(c.UID)))
}

// mustPrepare prepares c, failing the test on any error.
func (n *node) mustPrepare(c *resourceapi.ResourceClaim) *drapb.NodePrepareResourceResponse {
	n.t.Helper()
	r := n.prepare(c)
	if r.Error != "" {
		n.t.Fatalf("Prepare %s: %s", c.Name, r.Error)
	}
	return r
}

// mustUnprepare unprepares c, failing the test on any error.
func (n *node) mustUnprepare(c *resourceapi.ResourceClaim) {
	n.t.Helper()
	if e := n.unprepare(c); e != "" {
		n.t.Fatalf("Unprepare %s: %s", c.Name, e)
	}
}

// preparedState is what a prepared claim left on the node.
type preparedState struct {
	spec    cdispec.Spec
	record  checkpoint.Record
	devInfo binding.DeviceInfo
}

func (n *node) readPrepared(uid string) preparedState {
	n.t.Helper()
	var st preparedState
	b, err := os.ReadFile(filepath.Join(n.opts.CDIDir, cdiSpecName(uid)))
	must(n.t, err)
	must(n.t, json.Unmarshal(b, &st.spec))
	store, err := checkpoint.New(n.opts.CheckpointDir)
	must(n.t, err)
	st.record, err = store.Get(uid, "dev0")
	must(n.t, err)
	b, err = os.ReadFile(st.record.DeviceInfoFile)
	must(n.t, err)
	must(n.t, json.Unmarshal(b, &st.devInfo))
	return st
}

// checkGone fails unless the claim's CDI spec, checkpoints and device-info
// file are all gone.
func (n *node) checkGone(uid string, devInfo string) {
	n.t.Helper()
	if _, err := os.Stat(filepath.Join(n.opts.CDIDir, cdiSpecName(uid))); !errors.Is(err, os.ErrNotExist) {
		n.t.Errorf("CDI spec of claim %s still there (%v)", uid, err)
	}
	store, err := checkpoint.New(n.opts.CheckpointDir)
	must(n.t, err)
	if _, err := store.Get(uid, "dev0"); !errors.Is(err, checkpoint.ErrNotFound) {
		n.t.Errorf("checkpoint of claim %s: %v, want none", uid, err)
	}
	if devInfo != "" {
		if _, err := os.Stat(devInfo); !errors.Is(err, os.ErrNotExist) {
			n.t.Errorf("device-info file %s still there (%v)", devInfo, err)
		}
	}
}

func (n *node) claimStatus(c *resourceapi.ResourceClaim) []resourceapi.AllocatedDeviceStatus {
	n.t.Helper()
	got, err := n.kube.ResourceV1().ResourceClaims(c.Namespace).Get(n.ctx, c.Name, metav1.GetOptions{})
	must(n.t, err)
	return got.Status.Devices
}

// TestPrepareUnprepareUIO drives the plugin over its DRA socket as the
// kubelet does, on a node without a vIOMMU: Prepare binds the claimed
// device to uio_pci_generic after writing its checkpoint, writes a CDI spec
// with only /dev/uioN, the PCIDEVICE_ variable and the device-info file, and
// the claim's device status (saying the container must be privileged); a
// repeated Prepare, and one after a plugin restart, answer the same and
// change nothing; Unprepare gives the device back to virtio-pci (its netdev
// returns) and removes spec, device-info, checkpoint and status, and a
// repeated Unprepare succeeds.
func TestPrepareUnprepareUIO(t *testing.T) {
	n := newNode(t)
	n.withPortA()
	n.waitSlice("port A", hasDevices(portA))
	c := n.claim("uio", DeviceName(portA), "")
	uid := string(c.UID)
	n.giveA(c)

	r := n.mustPrepare(c)
	wantID := CDIKind + "=" + uid + "-dev0"
	if len(r.Devices) != 1 || r.Devices[0].DeviceName != DeviceName(portA) || r.Devices[0].PoolName != n.name ||
		len(r.Devices[0].CdiDeviceIds) != 1 || r.Devices[0].CdiDeviceIds[0] != wantID {
		t.Fatalf("Prepare devices %v, want %s of pool %s with CDI device %s", r.Devices, DeviceName(portA), n.name, wantID)
	}
	if got := n.sim.Driver(pciA); got != pci.DriverUIO {
		t.Fatalf("device on %q after Prepare, want %s", got, pci.DriverUIO)
	}
	st := n.readPrepared(uid)
	if st.record.PCIAddress != pciA || st.record.OriginalDriver != pci.DriverVirtioPCI || st.record.TargetDriver != pci.DriverUIO ||
		st.record.PortID != portA || !strings.EqualFold(st.record.MAC, macA) {
		t.Errorf("checkpoint %+v", st.record)
	}
	if st.devInfo.PCI == nil || st.devInfo.PCI.PCIAddress != pciA || st.devInfo.Type != "pci" {
		t.Errorf("device-info %+v, want pci %s", st.devInfo, pciA)
	}
	if st.spec.Kind != CDIKind || len(st.spec.Devices) != 1 || st.spec.Devices[0].Name != uid+"-dev0" {
		t.Fatalf("CDI spec %+v", st.spec)
	}
	edits := st.spec.Devices[0].ContainerEdits
	if len(edits.DeviceNodes) != 1 || edits.DeviceNodes[0].Path != "/dev/uio0" ||
		edits.DeviceNodes[0].HostPath != filepath.Join(n.opts.DevRoot, "dev", "uio0") {
		t.Errorf("CDI device nodes %+v, want only /dev/uio0", edits.DeviceNodes)
	}
	if len(edits.Env) != 1 || edits.Env[0] != PCIDeviceEnv+"="+pciA {
		t.Errorf("CDI env %v, want %s=%s", edits.Env, PCIDeviceEnv, pciA)
	}
	if len(edits.Mounts) != 1 || edits.Mounts[0].HostPath != st.record.DeviceInfoFile ||
		edits.Mounts[0].ContainerPath != "/"+filepath.Join(binding.DeviceInfoDPDir, filepath.Base(st.record.DeviceInfoFile)) {
		t.Errorf("CDI mounts %+v, want the device-info file", edits.Mounts)
	}
	status := n.claimStatus(c)
	if len(status) != 1 || status[0].Device != DeviceName(portA) || status[0].NetworkData == nil ||
		status[0].NetworkData.HardwareAddress != macA || status[0].Data == nil {
		t.Fatalf("claim status %+v", status)
	}
	var data deviceData
	must(t, json.Unmarshal(status[0].Data.Raw, &data))
	if data != (deviceData{PCIAddress: pciA, PortID: portA, Driver: pci.DriverUIO, Privileged: true}) {
		t.Errorf("claim status data %+v", data)
	}
	if len(status[0].Conditions) != 1 || !strings.Contains(status[0].Conditions[0].Message, "must be privileged") {
		t.Errorf("claim status conditions %+v, want one saying the container must be privileged", status[0].Conditions)
	}
	// Still advertised while the claim has it, found by its checkpoint.
	ds := n.waitSlice("port A while claimed", hasDevices(portA))
	if got := str(ds[0].Attributes[AttrPCIAddress]); got != pciA {
		t.Errorf("claimed device's pciAddress %q, want %s", got, pciA)
	}

	again := n.prepare(c)
	if again.Error != "" || len(again.Devices) != 1 || again.Devices[0].CdiDeviceIds[0] != wantID {
		t.Fatalf("repeated Prepare: %v", again)
	}
	n.stop()
	n.start(env.Config)
	after := n.prepare(c)
	if after.Error != "" || len(after.Devices) != 1 || after.Devices[0].CdiDeviceIds[0] != wantID {
		t.Fatalf("Prepare after a restart: %v", after)
	}
	if st2 := n.readPrepared(uid); st2.record.Created != st.record.Created || st2.record.OriginalDriver != pci.DriverVirtioPCI {
		t.Errorf("checkpoint rewritten by the repeated Prepares: %+v, was %+v", st2.record, st.record)
	}
	if got := n.sim.Driver(pciA); got != pci.DriverUIO {
		t.Fatalf("device on %q after the repeated Prepares, want %s", got, pci.DriverUIO)
	}

	n.mustUnprepare(c)
	if got := n.sim.Driver(pciA); got != pci.DriverVirtioPCI || n.sim.Netdev(pciA) == "" {
		t.Errorf("device on %q with netdev %q after Unprepare, want virtio-pci with its netdev", got, n.sim.Netdev(pciA))
	}
	n.checkGone(uid, st.record.DeviceInfoFile)
	if status := n.claimStatus(c); len(status) != 0 {
		t.Errorf("claim status after Unprepare %+v, want none", status)
	}
	if e := n.unprepare(c); e != "" {
		t.Fatalf("repeated Unprepare: %s", e)
	}
}

// TestPrepareVFIOWithIOMMU: with a vIOMMU the default is vfio-pci, and the
// CDI spec holds the device's group node and /dev/vfio/vfio only; the
// container need not be privileged.
func TestPrepareVFIOWithIOMMU(t *testing.T) {
	n := newNode(t, pcisim.WithIOMMU())
	must(t, n.sim.AddVirtioNet(pciB, macB)) // another device, its own group
	must(t, n.sim.AddVirtioNet(pciA, macA))
	info, err := pci.New(n.sim.Root()).IOMMU(pciA)
	must(t, err)
	n.setDevices(dev(portA, macA, v1alpha1.DPDKDeviceReady, ""))
	n.start(env.Config)
	n.waitSlice("port A", hasDevices(portA))
	c := n.claim("vfio", DeviceName(portA), "")
	uid := string(c.UID)
	n.giveA(c)
	n.mustPrepare(c)
	if got := n.sim.Driver(pciA); got != pci.DriverVFIO {
		t.Fatalf("device on %q, want %s", got, pci.DriverVFIO)
	}
	st := n.readPrepared(uid)
	var paths []string
	for _, d := range st.spec.Devices[0].ContainerEdits.DeviceNodes {
		paths = append(paths, d.Path)
	}
	if want := []string{"/dev/vfio/" + info.Group, "/dev/vfio/vfio"}; strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("CDI device nodes %v, want %v", paths, want)
	}
	var data deviceData
	status := n.claimStatus(c)
	must(t, json.Unmarshal(status[0].Data.Raw, &data))
	if data.Driver != pci.DriverVFIO || data.Privileged {
		t.Errorf("claim status data %+v, want vfio-pci, not privileged", data)
	}
	n.mustUnprepare(c)
	n.waitDriver(pciA, pci.DriverVirtioPCI)
}

// TestPrepareConfigAsksUIO: the claim's opaque config chooses the DPDK
// driver, over the vIOMMU default.
func TestPrepareConfigAsksUIO(t *testing.T) {
	n := newNode(t, pcisim.WithIOMMU())
	n.withPortA()
	c := n.claim("cfg", DeviceName(portA), `{"driver":"uio_pci_generic"}`)
	n.giveA(c)
	n.mustPrepare(c)
	if got := n.sim.Driver(pciA); got != pci.DriverUIO {
		t.Fatalf("device on %q, want %s as the config asks", got, pci.DriverUIO)
	}
	n.mustUnprepare(c)
}

// TestPrepareWaitsForOwner: a Prepare that comes before the controller has
// given the device to the claim waits for it (an event, not a poll), and a
// Prepare for a device the KuryrNode never gives the claim fails after the
// owner timeout with what the KuryrNode shows, binding nothing. The
// driver's metrics, in the registry it was given, count one failed and one
// prepared claim, the failed one's time at least the owner timeout, one
// unprepared claim, and no read of the KuryrNode from the API server (it
// never showed the device missing or another's).
func TestPrepareWaitsForOwner(t *testing.T) {
	n := newNode(t)
	reg := prometheus.NewRegistry()
	n.opts.Metrics = reg
	n.withPortA()
	c := n.claim("late", DeviceName(portA), "")

	r := n.prepare(c)
	if !strings.Contains(r.Error, "has not given it to claim/"+string(c.UID)+" yet") {
		t.Fatalf("Prepare before the owner: %q, want it to say the controller has not given the device yet", r.Error)
	}
	if got := n.sim.Driver(pciA); got != pci.DriverVirtioPCI {
		t.Fatalf("device on %q after a failed Prepare, want virtio-pci", got)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		n.giveA(c)
	}()
	n.mustPrepare(c)
	n.mustUnprepare(c)

	fams, err := reg.Gather()
	must(t, err)
	claims := map[string]float64{}
	var prepares uint64
	var prepareSeconds float64
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "kuryr_dra_claims_total":
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				claims[labels["operation"]+" "+labels["result"]] = m.GetCounter().GetValue()
			case "kuryr_dra_prepare_duration_seconds":
				prepares, prepareSeconds = m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			case "kuryr_dra_owner_reads_total":
				t.Errorf("kuryr_dra_owner_reads_total has a series %v: no read was due", m.GetLabel())
			}
		}
	}
	if want := map[string]float64{"prepare failed": 1, "prepare ok": 1, "unprepare ok": 1}; !maps.Equal(claims, want) {
		t.Errorf("kuryr_dra_claims_total gathered %v, want %v", claims, want)
	}
	if prepares != 2 || prepareSeconds < n.opts.OwnerTimeout.Seconds() {
		t.Errorf("kuryr_dra_prepare_duration_seconds gathered %d prepares in %.3f s, want 2 taking at least the %s owner timeout", prepares, prepareSeconds, n.opts.OwnerTimeout)
	}
}

// TestSecondClaimRefused: a device is never handed to two claims. A second
// claim allocated the same device fails while the KuryrNode shows the first
// as its owner (held by another consumer), and still fails, on the
// checkpoint, if the KuryrNode wrongly names the second: the first claim's
// device, spec and checkpoint stay as they were. Neither error names the
// first claim (another tenant's, in text the second claim's pod sees).
func TestSecondClaimRefused(t *testing.T) {
	n := newNode(t)
	n.withPortA()
	first := n.claim("first", DeviceName(portA), "")
	n.giveA(first)
	n.mustPrepare(first)
	second := n.claim("second", DeviceName(portA), "")

	r := n.prepare(second)
	if !strings.Contains(r.Error, "held by another consumer") || strings.Contains(r.Error, string(first.UID)) {
		t.Fatalf("Prepare second: %q, want it refused as held by another consumer, without naming claim %s", r.Error, first.UID)
	}
	n.giveA(second)
	r = n.prepare(second)
	if !strings.Contains(r.Error, ErrOtherClaim.Error()) || strings.Contains(r.Error, string(first.UID)) {
		t.Fatalf("Prepare second with the KuryrNode naming it: %q, want it refused on first's checkpoint, without naming claim %s", r.Error, first.UID)
	}
	if got := n.sim.Driver(pciA); got != pci.DriverUIO {
		t.Errorf("device on %q, want still uio_pci_generic for the first claim", got)
	}
	n.readPrepared(string(first.UID)) // fails unless spec, checkpoint and device-info are there
	n.checkGone(string(second.UID), "")
	// The first refusal was confirmed with the API server; the second
	// passed the KuryrNode and was refused on the checkpoint.
	n.checkOwnerReads(map[string]float64{ownerReadRefused: 1})
	n.checkClaims("prepare", 1, 2)
	if len(n.claimStatus(second)) != 0 {
		t.Errorf("second claim has a device status")
	}
}

// TestFailedPrepareUndoesOnlyANewClaim: when writing the CDI spec fails
// (its directory is a file), a first Prepare gives the bound device back and
// drops its checkpoint, while a repeated Prepare of a claim prepared before
// leaves its device bound (its pod may be using it); once the directory is
// back, the Prepares succeed.
func TestFailedPrepareUndoesOnlyANewClaim(t *testing.T) {
	n := newNode(t)
	n.withPortA()
	c := n.claim("undo", DeviceName(portA), "")
	n.giveA(c)
	uid := string(c.UID)
	breakDir := func() {
		must(t, os.RemoveAll(n.opts.CDIDir))
		must(t, os.WriteFile(n.opts.CDIDir, nil, 0o600))
	}
	fixDir := func() {
		must(t, os.Remove(n.opts.CDIDir))
		must(t, os.MkdirAll(n.opts.CDIDir, 0o755))
	}

	breakDir()
	if r := n.prepare(c); !strings.Contains(r.Error, "write CDI spec") {
		t.Fatalf("first Prepare with no CDI directory: %q, want it to fail writing the spec", r.Error)
	}
	n.waitDriver(pciA, pci.DriverVirtioPCI)
	fixDir()
	n.checkGone(uid, "")

	n.mustPrepare(c)
	breakDir()
	if r := n.prepare(c); !strings.Contains(r.Error, "write CDI spec") {
		t.Fatalf("repeated Prepare with no CDI directory: %q, want it to fail writing the spec", r.Error)
	}
	if got := n.sim.Driver(pciA); got != pci.DriverUIO {
		t.Fatalf("device on %q after a failed repeated Prepare, want still %s", got, pci.DriverUIO)
	}
	store, err := checkpoint.New(n.opts.CheckpointDir)
	must(t, err)
	if _, err := store.Get(uid, "dev0"); err != nil {
		t.Fatalf("checkpoint after a failed repeated Prepare: %v", err)
	}
	fixDir()
	n.mustPrepare(c)
	n.mustUnprepare(c)
}

// TestPrepareTakesOnlyTheClaimsDevice performs what a forged allocation
// would try: a claim allocated a device that the KuryrNode records as a
// pod's own port (Unpooled, InUse by that pod), and a claim allocated a
// device whose port the KuryrNode does not list at all (its virtio device
// present in the VM). Each Prepare fails, the first without naming the pod
// (another tenant's), and binds nothing: both devices stay on virtio-pci,
// no checkpoint, no CDI spec. Each fails before the driver's
// --dra-owner-timeout (60 s here) ends, after exactly one read of the
// KuryrNode from the API server, which confirms what the driver's watch
// shows: the Prepare does not wait out the timeout for a record that will
// not come. The claim the controller did give port A prepares.
func TestPrepareTakesOnlyTheClaimsDevice(t *testing.T) {
	podsPort := dev(portA, macA, v1alpha1.DPDKDeviceInUse, podOwner)
	podsPort.Unpooled = true
	n, gate := gatedNode(t, podsPort)
	must(t, n.sim.AddVirtioNet(pciB, macB))

	refused := func(what string, c *resourceapi.ResourceClaim, want string) {
		t.Helper()
		r, took, reads := n.timedPrepare(gate, c)
		if !strings.Contains(r.Error, want) || strings.Contains(r.Error, podUID) {
			t.Errorf("Prepare of %s: %q, want it to say %q, without the pod's UID", what, r.Error, want)
		}
		if took >= n.opts.OwnerTimeout {
			t.Errorf("Prepare of %s: refused after %s, not before the %s owner timeout", what, took, n.opts.OwnerTimeout)
		}
		if reads != 1 {
			t.Errorf("Prepare of %s: %d reads of the KuryrNode from the API server, want the one that confirms the refusal", what, reads)
		}
	}
	onPods := n.claim("on-pods-port", DeviceName(portA), "")
	refused("a pod's own port", onPods, "held by another consumer")
	unlisted := n.claim("unlisted", DeviceName(portB), "")
	refused("a port the KuryrNode does not list", unlisted, "port "+portB+" is not in KuryrNode "+n.name+"'s dpdkDevices")
	for _, a := range []string{pciA, pciB} {
		if got := n.sim.Driver(a); got != pci.DriverVirtioPCI {
			t.Errorf("device %s on %q after the refused Prepares, want virtio-pci", a, got)
		}
	}
	n.checkGone(string(onPods.UID), "")
	n.checkGone(string(unlisted.UID), "")

	given := n.claim("given", DeviceName(portA), "")
	n.giveA(given)
	n.mustPrepare(given)
	if got := n.sim.Driver(pciA); got != pci.DriverUIO {
		t.Errorf("device of the claim given port A on %q, want %s", got, pci.DriverUIO)
	}
	n.mustUnprepare(given)
}

// TestPrepareAcceptsARecordTheWatchHasNotDelivered: the driver's
// KuryrNode watch lags (held back by the test) and still shows port A as a
// pod's when the controller has given it to the claim. The Prepare reads
// the KuryrNode once from the API server, finds the claim there, and
// prepares the device, well before the owner timeout (60 s here) and
// while the watch still shows the pod.
func TestPrepareAcceptsARecordTheWatchHasNotDelivered(t *testing.T) {
	n, gate := gatedNode(t, dev(portA, macA, v1alpha1.DPDKDeviceInUse, podOwner))

	c := n.claim("lagging", DeviceName(portA), "")
	gate.Hold()
	n.giveA(c)
	r, took, reads := n.timedPrepare(gate, c)
	if owner := n.cachedOwner(portA); owner != podOwner {
		t.Fatalf("the driver's watch delivered the claim's record while held (owner %q): the test proves nothing", owner)
	}
	gate.Release()
	if took >= n.opts.OwnerTimeout {
		t.Errorf("prepared after %s, not before the %s owner timeout", took, n.opts.OwnerTimeout)
	}
	n.preparedAfterOneRead("of a claim whose record the watch had not delivered", c, r, reads, ownerReadListed)
}

// TestPrepareFailedOwnerReadFallsBackToTheWatch: when the one read of the
// KuryrNode from the API server that a Prepare may make fails (answered
// 500 on its way), the Prepare neither fails nor reads again, however
// often the KuryrNode's watch wakes it meanwhile with port A still a
// pod's: it waits on the watch, within the owner timeout (60 s here), and
// prepares the device once the watch shows it given to the claim.
func TestPrepareFailedOwnerReadFallsBackToTheWatch(t *testing.T) {
	n, gate := gatedNode(t, dev(portA, macA, v1alpha1.DPDKDeviceInUse, podOwner))

	c := n.claim("unconfirmed", DeviceName(portA), "")
	gate.FailReads(true)
	done := n.prepareAsync(c)
	must(t, waitFor(n.ctx, "the Prepare's read of the KuryrNode", func() (bool, error) { return gate.Reads() == 1, nil }))
	// The KuryrNode changes, port A still the pod's, waking the waiting
	// Prepare each time.
	for i := range 3 {
		other := dev(portB, macB, v1alpha1.DPDKDeviceAttaching, "")
		other.SubnetID = fmt.Sprintf("sub-touched-%d", i)
		n.setDevices(dev(portA, macA, v1alpha1.DPDKDeviceInUse, podOwner), other)
		must(t, waitFor(n.ctx, "the driver's watch seeing the change", func() (bool, error) {
			d, ok := n.cachedDevice(portB)
			return ok && d.SubnetID == other.SubnetID, nil
		}))
	}
	select {
	case r := <-done:
		t.Fatalf("Prepare answered while its read failed and the watch showed port A a pod's: %q", r.Error)
	case <-time.After(500 * time.Millisecond):
	}
	n.giveA(c)
	r := <-done
	n.preparedAfterOneRead("once the watch brought the claim's record", c, r, gate.Reads(), ownerReadFailed)
}

// TestPrepareWaitsWhenTheAPIServerShowsTheDeviceNotGivenYet: the
// driver's KuryrNode watch lags (held back by the test) and still shows
// port A as a pod's when the pod has let it go and the controller has not
// given it to the claim yet. The Prepare's one read from the API server
// shows it free (counted as pending), so the Prepare does not fail: it
// waits on the watch and prepares the device once the watch shows it
// given to the claim.
func TestPrepareWaitsWhenTheAPIServerShowsTheDeviceNotGivenYet(t *testing.T) {
	n, gate := gatedNode(t, dev(portA, macA, v1alpha1.DPDKDeviceInUse, podOwner))

	c := n.claim("pending", DeviceName(portA), "")
	gate.Hold()
	n.setDevices(dev(portA, macA, v1alpha1.DPDKDeviceReady, ""))
	done := n.prepareAsync(c)
	must(t, waitFor(n.ctx, "the Prepare's read of the KuryrNode", func() (bool, error) {
		return testutil.ToFloat64(n.driver.metrics.ownerReads.WithLabelValues(ownerReadPending)) == 1, nil
	}))
	if owner := n.cachedOwner(portA); owner != podOwner {
		t.Fatalf("the driver's watch delivered the free port while held (owner %q): the test proves nothing", owner)
	}
	select {
	case r := <-done:
		t.Fatalf("Prepare answered while the API server showed port A given to no one yet: %q", r.Error)
	case <-time.After(500 * time.Millisecond):
	}
	gate.Release()
	n.giveA(c)
	r := <-done
	n.preparedAfterOneRead("once the controller gave the free port to the claim", c, r, gate.Reads(), ownerReadPending)
	n.checkClaims("prepare", 1, 0)
}

// prepareAsync prepares c in the background; the answer comes on the
// returned channel (an error of the kubelet's call as the answer's).
func (n *node) prepareAsync(c *resourceapi.ResourceClaim) <-chan *drapb.NodePrepareResourceResponse {
	done := make(chan *drapb.NodePrepareResourceResponse, 1)
	go func() {
		r, err := n.prepareCtx(n.ctx, c)
		if err != nil {
			r = &drapb.NodePrepareResourceResponse{Error: "the kubelet's call failed: " + err.Error()}
		}
		done <- r
	}()
	return done
}

// preparedAfterOneRead checks the Prepare of c (what says which) that
// answered r, having read the KuryrNode from the API server reads times:
// no error, port A's device bound to uio, exactly one read, counted in
// kuryr_dra_owner_reads_total as result (and no other); then it
// unprepares c.
func (n *node) preparedAfterOneRead(what string, c *resourceapi.ResourceClaim, r *drapb.NodePrepareResourceResponse, reads int, result string) {
	n.t.Helper()
	if r.Error != "" {
		n.t.Fatalf("Prepare %s: %s", what, r.Error)
	}
	if got := n.sim.Driver(pciA); got != pci.DriverUIO {
		n.t.Errorf("Prepare %s: device on %q after it, want %s", what, got, pci.DriverUIO)
	}
	if reads != 1 {
		n.t.Errorf("Prepare %s: %d reads of the KuryrNode from the API server, want 1", what, reads)
	}
	n.checkOwnerReads(map[string]float64{result: 1})
	n.mustUnprepare(c)
}

// checkOwnerReads checks the running driver's kuryr_dra_owner_reads_total
// by result: want's counts, 0 for the results want leaves out.
func (n *node) checkOwnerReads(want map[string]float64) {
	n.t.Helper()
	for _, result := range []string{ownerReadListed, ownerReadRefused, ownerReadPending, ownerReadFailed} {
		if got := testutil.ToFloat64(n.driver.metrics.ownerReads.WithLabelValues(result)); got != want[result] {
			n.t.Errorf("kuryr_dra_owner_reads_total{result=%q} = %v, want %v", result, got, want[result])
		}
	}
}

// checkClaims checks the running driver's kuryr_dra_claims_total for
// operation: ok and failed claims.
func (n *node) checkClaims(operation string, ok, failed float64) {
	n.t.Helper()
	for result, want := range map[string]float64{claimOK: ok, claimFailed: failed} {
		if got := testutil.ToFloat64(n.driver.metrics.claims.WithLabelValues(operation, result)); got != want {
			n.t.Errorf("kuryr_dra_claims_total{operation=%q,result=%q} = %v, want %v", operation, result, got, want)
		}
	}
}

// podUID is a pod's UID on the node, and podOwner that pod as a KuryrNode
// device's owner.
const (
	podUID   = "0f0f0f0f-1111-4222-8333-444444444444"
	podOwner = v1alpha1.DPDKOwnerPod + podUID
)

// gatedNode is a node whose driver (owner timeout 60 s) talks to the API
// server through the returned gate on KuryrNodes, with port A's device
// plugged and the KuryrNode listing entry (port A's), as the driver's
// watch already shows it.
func gatedNode(t *testing.T, entry v1alpha1.DPDKDevice) (*node, *testenv.WatchGate) {
	t.Helper()
	n := newNode(t)
	n.opts.OwnerTimeout = 60 * time.Second
	must(t, n.sim.AddVirtioNet(pciA, macA))
	n.setDevices(entry)
	gate := &testenv.WatchGate{Resource: "kuryrnodes"}
	n.start(gate.Wrap(env.Config))
	t.Cleanup(gate.Release) // before the driver stops
	n.waitCached("port A's entry", entry.PortID, entry.Owner)
	return n, gate
}

// timedPrepare prepares c and returns the answer, how long it took and
// how many reads of the KuryrNode from the API server gate saw meanwhile.
func (n *node) timedPrepare(gate *testenv.WatchGate, c *resourceapi.ResourceClaim) (*drapb.NodePrepareResourceResponse, time.Duration, int) {
	n.t.Helper()
	start, reads := time.Now(), gate.Reads()
	r := n.prepare(c)
	return r, time.Since(start), gate.Reads() - reads
}

// cachedDevice is port's entry in the KuryrNode as the running driver's
// watch last showed it.
func (n *node) cachedDevice(port string) (v1alpha1.DPDKDevice, bool) {
	node, _ := n.driver.node.snapshot()
	if node == nil {
		return v1alpha1.DPDKDevice{}, false
	}
	return node.Status.DPDKDevice(port)
}

// cachedOwner is the owner of port in the KuryrNode as the running
// driver's watch last showed it ("-" when it does not list the port).
func (n *node) cachedOwner(port string) string {
	if d, ok := n.cachedDevice(port); ok {
		return d.Owner
	}
	return "-"
}

// waitCached waits until the running driver's watch shows owner as
// port's.
func (n *node) waitCached(what, port, owner string) {
	n.t.Helper()
	must(n.t, waitFor(n.ctx, "the driver's watch showing "+what, func() (bool, error) { return n.cachedOwner(port) == owner, nil }))
}
