package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// hotplugDelay is the all-in-one's delay from Nova's attach to the device
// appearing in the VM (test/aio: 0.3 s, as on a real guest).
const hotplugDelay = 300 * time.Millisecond

// safeHotplug is a node VM's Nova hook equivalent to the all-in-one's own
// (pick a free PCI slot 05–1f, hot-plug a virtio-net device with the
// port's MAC 0.3 s later; unplug on detach), except that it never holds a
// lock while it calls the simulated PCI bus. The environment's hook
// (test/aio vmHook.Attached) holds Node.mu while calling
// pcisim.Sim.AddVirtioNetAfter (which takes Sim.mu), while the netdev hook
// runs under Sim.mu and takes Node.mu (Node.record): with many pods per
// node an attach and a netdev event meet and that node's bus deadlocks
// (every later attach to it hangs, and Env.Close hangs in Sim.Close). The
// bench installs this hook (AIOConfig.SafeHotplug) to measure past that.
// Node.History and Node.PCIAddress do not see its attaches.
type safeHotplug struct {
	node  *aio.Node
	mu    sync.Mutex
	slots map[string]string // port ID → PCI address
}

var _ cloudsim.ServerHook = (*safeHotplug)(nil)

// installSafeHotplug replaces every node's Nova hook with a safeHotplug.
func installSafeHotplug(env *aio.Env) {
	for _, n := range env.Nodes {
		env.Cloud.SetServerHook(n.Server.Server.ID, &safeHotplug{node: n, slots: map[string]string{}})
	}
}

func (h *safeHotplug) Attached(_ context.Context, serverID string, port cloudsim.Port) error {
	h.mu.Lock()
	if _, ok := h.slots[port.ID]; ok {
		h.mu.Unlock()
		return nil
	}
	used := map[string]bool{}
	for _, a := range h.slots {
		used[a] = true
	}
	addr := ""
	for slot := 5; slot < 0x20 && addr == ""; slot++ {
		if a := fmt.Sprintf("0000:00:%02x.0", slot); !used[a] {
			addr = a
		}
	}
	if addr == "" {
		h.mu.Unlock()
		return fmt.Errorf("server %s (node %s): no free PCI slot for port %s", serverID, h.node.Name, port.ID)
	}
	h.slots[port.ID] = addr
	h.mu.Unlock()
	h.node.PCI.AddVirtioNetAfter(hotplugDelay, addr, port.MACAddress)
	return nil
}

func (h *safeHotplug) Detached(_ context.Context, serverID string, port cloudsim.Port) error {
	h.mu.Lock()
	addr, ok := h.slots[port.ID]
	delete(h.slots, port.ID)
	h.mu.Unlock()
	if !ok {
		return nil
	}
	if err := h.node.PCI.Remove(addr); err != nil {
		return fmt.Errorf("server %s (node %s): unplug %s of port %s: %w", serverID, h.node.Name, addr, port.ID, err)
	}
	return nil
}
