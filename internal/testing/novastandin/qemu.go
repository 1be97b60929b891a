package novastandin

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
)

// QEMUHotplug plugs a server's devices into a QEMU VM over QMP:
// netdev_add (a UDP socket backend whose frames the host counts) and
// device_add virtio-net-pci with the port's MAC on a free pcie-root-port
// (iommu_platform=on, ats=on when the VM has a vIOMMU), device_del on
// unplug. It also notes when each device was plugged.
type QEMUHotplug struct {
	VM *qemu.VM
	// Match, when set, selects the frames each NIC's Matched counts.
	Match func(frame []byte) bool

	mu      sync.Mutex
	nics    map[string]*qemu.NIC
	plugged map[string]time.Time
}

var _ Hotplugger = (*QEMUHotplug)(nil)

// QEMUDeviceID is the QEMU device ID of the NIC of a port ("port-<id>": a
// QMP ID must start with a letter).
func QEMUDeviceID(portID string) string { return "port-" + portID }

// Plug implements Hotplugger. Plugging a device already there with the
// same MAC succeeds.
func (h *QEMUHotplug) Plug(ctx context.Context, serverID string, d Device) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nics == nil {
		h.nics, h.plugged = map[string]*qemu.NIC{}, map[string]time.Time{}
	}
	if n := h.nics[d.PortID]; n != nil {
		if strings.EqualFold(n.MAC, d.MAC) {
			return nil
		}
		return fmt.Errorf("plug port %s into server %s: device %s has MAC %s, not %s", d.PortID, serverID, n.ID, n.MAC, d.MAC)
	}
	nic, err := h.VM.AttachNIC(ctx, qemu.NICOptions{ID: QEMUDeviceID(d.PortID), MAC: d.MAC, Match: h.Match})
	if err != nil {
		return fmt.Errorf("plug port %s into server %s: %w", d.PortID, serverID, err)
	}
	h.nics[d.PortID] = nic
	h.plugged[d.PortID] = time.Now()
	return nil
}

// Unplug implements Hotplugger.
func (h *QEMUHotplug) Unplug(ctx context.Context, serverID string, d Device) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nics[d.PortID] == nil {
		return nil
	}
	if err := h.VM.DetachNIC(ctx, QEMUDeviceID(d.PortID)); err != nil {
		return fmt.Errorf("unplug port %s from server %s: %w", d.PortID, serverID, err)
	}
	delete(h.nics, d.PortID)
	return nil
}

// NIC returns the device plugged for port portID (nil if none) and when
// device_add returned.
func (h *QEMUHotplug) NIC(portID string) (*qemu.NIC, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nics[portID], h.plugged[portID]
}
