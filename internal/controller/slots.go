package controller

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// maxHotplugSlots bounds --hotplug-slots and the node annotation: a q35
// machine has at most 256 PCIe root ports, far more than anyone boots with.
const maxHotplugSlots = 256

// hotplugLimit returns how many ports Nova may hot-attach to node's VM:
// its kuryr-dpdk.io/hotplug-slots annotation, else def (0: not counted).
// An annotation that is not a number in 0..256 is an error, and def holds.
func hotplugLimit(node *corev1.Node, def int) (int, error) {
	v, ok := node.Annotations[v1alpha1.HotplugSlotsAnnotation]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxHotplugSlots {
		return def, fmt.Errorf("node %s: annotation %s=%q is not a number of slots in 0..%d; using %d",
			node.Name, v1alpha1.HotplugSlotsAnnotation, v, maxHotplugSlots, def)
	}
	return n, nil
}

// errNoHotplugSlot says every hot-plug slot of a node's VM is taken: the
// attach is not tried, and the pod waits (with backoff) for one to free.
type errNoHotplugSlot struct {
	node        string
	limit, used int
}

func (e *errNoHotplugSlot) Error() string {
	return fmt.Sprintf("node %s has no free hot-plug slot: all %d in use (%d ports attached besides its own)", e.node, e.limit, e.used)
}

// hotplugSlots counts, per node VM, the ports attached to it besides its
// own port, so that Nova is never asked to attach past the slots the VM
// booted with (an attach that finds none fails in the guest, late). The
// count is rebuilt from Neutron (ports whose device_id is the server) the
// first time a server is seen and again whenever it looks full, so ports
// detached behind the controller's back free their slots.
type hotplugSlots struct {
	cloud openstack.PortReader

	mu       sync.Mutex
	byServer map[string]*serverSlots
}

type serverSlots struct {
	mu     sync.Mutex
	node   string
	limit  int
	loaded bool
	used   map[string]bool // port IDs attached, or being attached
	// attaching are the ports reserved here whose Nova attach has not
	// answered yet: Neutron may not show them on the server, so a reload
	// of the count (load) keeps them.
	attaching map[string]bool
}

func newHotplugSlots(c openstack.PortReader) *hotplugSlots {
	return &hotplugSlots{cloud: c, byServer: map[string]*serverSlots{}}
}

func (h *hotplugSlots) server(id string) *serverSlots {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.byServer[id]
	if s == nil {
		s = &serverSlots{used: map[string]bool{}, attaching: map[string]bool{}}
		h.byServer[id] = s
	}
	return s
}

// reserve takes a slot of node's VM for port portID before Nova is asked
// to attach it. A node whose limit is 0 is not counted. A nil
// *hotplugSlots counts nothing.
func (h *hotplugSlots) reserve(ctx context.Context, node nodeInfo, portID string) error {
	if h == nil || node.HotplugSlots <= 0 || node.ServerID == "" {
		return nil
	}
	s := h.server(node.ServerID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node, s.limit = node.Name, node.HotplugSlots
	if s.used[portID] {
		return nil
	}
	if !s.loaded || len(s.used) >= s.limit {
		if err := h.load(ctx, node, s); err != nil {
			return err
		}
	}
	if s.used[portID] {
		return nil
	}
	if len(s.used) >= s.limit {
		return &errNoHotplugSlot{node: node.Name, limit: s.limit, used: len(s.used)}
	}
	s.used[portID], s.attaching[portID] = true, true
	return nil
}

// attached ends portID's attach on server serverID (Nova answered it):
// Neutron shows the port on the server from now on, and a reload counts
// it from there.
func (h *hotplugSlots) attached(serverID, portID string) {
	if s := h.lookup(serverID); s != nil {
		s.mu.Lock()
		delete(s.attaching, portID)
		s.mu.Unlock()
	}
}

func (h *hotplugSlots) lookup(serverID string) *serverSlots {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byServer[serverID]
}

// room returns the limit of node's VM and the ports that use its slots
// (attached, or reserved for an attach under way; a copy), reading Neutron
// when they are not known yet or look full (as reserve does). limit 0:
// not counted.
func (h *hotplugSlots) room(ctx context.Context, node nodeInfo) (limit int, used map[string]bool, err error) {
	if h == nil || node.HotplugSlots <= 0 || node.ServerID == "" {
		return 0, nil, nil
	}
	s := h.server(node.ServerID)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node, s.limit = node.Name, node.HotplugSlots
	if !s.loaded || len(s.used) >= s.limit {
		if err := h.load(ctx, node, s); err != nil {
			return 0, nil, err
		}
	}
	return s.limit, maps.Clone(s.used), nil
}

// load reads which ports are attached to node's server. s.mu is held.
func (h *hotplugSlots) load(ctx context.Context, node nodeInfo, s *serverSlots) error {
	ports, err := h.cloud.ListPorts(ctx, openstack.PortFilter{DeviceID: node.ServerID})
	if err != nil {
		return fmt.Errorf("count the ports attached to server %s (node %s): %w", node.ServerID, node.Name, err)
	}
	s.used = map[string]bool{}
	for _, p := range ports {
		if p.ID != node.ParentPortID {
			s.used[p.ID] = true
		}
	}
	for id := range s.attaching {
		s.used[id] = true
	}
	s.loaded = true
	return nil
}

// free gives back the slot port portID held on server serverID (detached,
// or its attach failed).
func (h *hotplugSlots) free(serverID, portID string) {
	s := h.lookup(serverID)
	if s == nil {
		return
	}
	s.mu.Lock()
	delete(s.used, portID)
	delete(s.attaching, portID)
	s.mu.Unlock()
}

// forget drops what is counted of server serverID, whose node is deleted.
func (h *hotplugSlots) forget(serverID string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	delete(h.byServer, serverID)
	h.mu.Unlock()
}

// status returns the slots of server serverID as its KuryrNode shows them;
// nil while they are not counted (no limit, or not read yet).
func (h *hotplugSlots) status(serverID string) *v1alpha1.HotplugSlots {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	s := h.byServer[serverID]
	h.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded || s.limit <= 0 {
		return nil
	}
	return &v1alpha1.HotplugSlots{Limit: s.limit, Used: len(s.used), Free: max(0, s.limit-len(s.used))}
}
