package binding

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/pci"
)

// TestClaimedRefusesWhatTheClaimDidNotPrepare: a claimed interface is
// reported only for the device its claim's Prepare bound: no DRA
// checkpoint for the claim (or for the port, or no DRA directory at all)
// is ErrClaimNotPrepared; a MAC other than the prepared one, and a device
// no longer bound as the Prepare left it, are refused naming both sides;
// none of these leaves a checkpoint or touches the device. The prepared
// device is then reported as it is.
func TestClaimedRefusesWhatTheClaimDidNotPrepare(t *testing.T) {
	t.Parallel()
	e := newDPDKEnv(t)
	if err := e.sim.AddVirtioNet(dpdkAddr, dpdkMAC); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	claims, err := checkpoint.New(filepath.Join(e.root, "dra-checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	const uid = "claim-uid-1"
	prep := NewDPDK(pci.New(e.root, pci.WithBindTimeout(2*time.Second)), claims, DPDKOptions{DeviceTimeout: 2 * time.Second})
	req := Request{ContainerID: dpdkCID, IfName: "net1", MAC: hw(t, dpdkMAC), PortID: "port-1", ClaimUID: uid}

	if _, err := NewClaimed(e.daemon(time.Second), nil).Attach(ctx, req); !errors.Is(err, ErrClaimNotPrepared) {
		t.Fatalf("no DRA directory: %v, want ErrClaimNotPrepared", err)
	}
	c := NewClaimed(e.daemon(time.Second), claims)
	if _, err := c.Attach(ctx, req); !errors.Is(err, ErrClaimNotPrepared) {
		t.Fatalf("claim not prepared: %v, want ErrClaimNotPrepared", err)
	}
	if _, err := prep.Attach(ctx, Request{ContainerID: uid, IfName: "dev0", MAC: hw(t, dpdkMAC), PortID: "port-1", DPDKDriver: pci.DriverUIO}); err != nil {
		t.Fatal(err)
	}
	other := req
	other.PortID = "port-2"
	if _, err := c.Attach(ctx, other); !errors.Is(err, ErrClaimNotPrepared) {
		t.Fatalf("another port of the claim: %v, want ErrClaimNotPrepared", err)
	}
	wrongMAC := req
	wrongMAC.MAC = hw(t, "fa:16:3e:5d:00:02")
	if _, err := c.Attach(ctx, wrongMAC); err == nil || !strings.Contains(err.Error(), dpdkMAC) || !strings.Contains(err.Error(), "fa:16:3e:5d:00:02") {
		t.Fatalf("another MAC: %v, want a refusal naming both", err)
	}
	e.requireNoCheckpoint()

	res, err := c.Attach(ctx, req)
	if err != nil || res.PCIAddress != dpdkAddr || res.BoundDriver != pci.DriverUIO || res.OriginalDriver != pci.DriverVirtioPCI {
		t.Fatalf("prepared device: %+v, %v", res, err)
	}
	if err := c.Detach(ctx, dpdkCID, "net1"); err != nil {
		t.Fatal(err)
	}
	if d := e.sim.Driver(dpdkAddr); d != pci.DriverUIO {
		t.Fatalf("Detach moved the claim's device to %q", d)
	}
	e.requireNoCheckpoint()

	// The device given back behind the claim's back: not reported.
	if err := prep.Detach(ctx, uid, "dev0"); err != nil {
		t.Fatal(err)
	}
	if _, err := prep.store.Get(uid, "dev0"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("claim checkpoint after its Detach: %v", err)
	}
	if err := claims.Put(checkpoint.Record{ContainerID: uid, IfName: "dev0", Kind: checkpoint.KindDPDK, MAC: dpdkMAC, PortID: "port-1",
		PCIAddress: dpdkAddr, OriginalDriver: pci.DriverVirtioPCI, TargetDriver: pci.DriverUIO}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Attach(ctx, req); !errors.Is(err, ErrClaimNotPrepared) || !strings.Contains(err.Error(), dpdkAddr) {
		t.Fatalf("device not bound as the claim left it: %v, want ErrClaimNotPrepared naming %s", err, dpdkAddr)
	}
	e.requireNoCheckpoint()
	e.requireKernelOwned()
}
