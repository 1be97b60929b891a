package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// What is particular to the pools of nested-dpdk ports: Nova attaches them
// ahead of any consumer, within the VM's hot-plug slots; and
// status.dpdkDevices of the node's KuryrNode lists them, each with its
// state and owner, for the node's daemon and the DRA driver. (Their size
// per node is set as any pool's: pool_size.go.)

// slotRecheck is how long a nested-dpdk pool whose VM had no free hot-plug
// slot waits before it looks again (a look may read Neutron).
const slotRecheck = 5 * time.Second

// withinSlots returns how many of n new ports of nested-dpdk pool key the
// VM of node has free hot-plug slots for, and holds them for the create
// that makes them (pool.making, until fill records the ports made). Free
// are the VM's slots less those used (attached, or reserved for an attach
// under way: slots.go) and less every port of the node's DPDK pools that
// holds none: made and not attached yet, or being made for another pool.
// The pools of a node are filled at once (round): the count and the hold
// are one step under the pools' lock, so no two pools plan with the same
// slot. None: an errNoHotplugSlot.
func (ps *pools) withinSlots(ctx context.Context, key poolKey, nodeObj *corev1.Node, node nodeInfo, n int) (int, error) {
	limit, used, err := ps.r.slots.room(ctx, node)
	if err != nil || limit == 0 {
		return n, err
	}
	ps.mu.Lock()
	pending := 0
	for k, p := range ps.byKey {
		if k.node == key.node && k.driver == v1alpha1.DriverNestedDPDK {
			pending += p.making + p.slotless(used)
		}
	}
	free := limit - len(used) - pending
	if p := ps.byKey[key]; p != nil && free > 0 {
		n = min(n, free)
		p.making, p.slotsFull = n, false
	}
	ps.mu.Unlock()
	if free <= 0 {
		err := &errNoHotplugSlot{node: node.Name, limit: limit, used: len(used)}
		ps.noSlot(ctx, key, nodeObj, err)
		return 0, err
	}
	return n, nil
}

// slotless counts p's ports that used (a VM's slots in use, by port ID)
// does not name: those made and not attached yet, and those whose attach
// began after used was read. Ports leaving are not counted: they are
// being detached and deleted. ps.mu is held.
func (p *pool) slotless(used map[string]bool) int {
	n := 0
	count := func(id string) {
		if !used[id] {
			n++
		}
	}
	for _, w := range p.ready {
		count(w.port.ID)
	}
	for id := range p.warming {
		count(id)
	}
	for id := range p.unwired {
		count(id)
	}
	for id := range p.inUse {
		count(id)
	}
	return n
}

// noSlot records that err, if it says the VM's hot-plug slots are full,
// held pool key back: the pool waits slotRecheck before it makes or
// attaches a port again, and the first time a Warning Event on the Node
// names the node and the limit.
func (ps *pools) noSlot(_ context.Context, key poolKey, nodeObj *corev1.Node, err error) {
	var full *errNoHotplugSlot
	if !errors.As(err, &full) {
		return
	}
	ps.mu.Lock()
	p := ps.byKey[key]
	first := p != nil && !p.slotsFull
	if p != nil {
		p.slotsFull, p.noSlotUntil = true, time.Now().Add(slotRecheck)
	}
	ps.mu.Unlock()
	if first {
		ps.r.recorder.Eventf(nodeObj, nil, corev1.EventTypeWarning, reasonNoSlot, "FillPool",
			"pool of %s ports on subnet %s not filled: %s", key.driver, key.subnetID, full.Error())
	}
}

// allocatedPorts returns the IDs of the pool ports that ResourceClaims'
// allocations name (taken by their claims, or about to be): no pod takes
// one (pools.take) and no shrink releases one. It reads the cache of
// ResourceClaims, no copies made: the claims are only read here.
func (ps *pools) allocatedPorts(ctx context.Context) (map[string]bool, error) {
	var list resourcev1.ResourceClaimList
	if err := ps.r.client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list ResourceClaims for the DPDK devices allocated: %w", err)
	}
	out := map[string]bool{}
	for i := range list.Items {
		devs, _ := claimDevices(&list.Items[i])
		for _, d := range devs {
			out[d.portID] = true
		}
	}
	return out, nil
}

// devicesByNode returns the ports of the nested-dpdk pools by node, as
// status.dpdkDevices shows them, sorted by port ID.
func (ps *pools) devicesByNode() map[string][]v1alpha1.DPDKDevice {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := map[string][]v1alpha1.DPDKDevice{}
	for k, p := range ps.byKey {
		if k.driver != v1alpha1.DriverNestedDPDK {
			continue
		}
		add := func(port openstack.Port, state v1alpha1.DPDKDeviceState, owner string) {
			out[k.node] = append(out[k.node], v1alpha1.DPDKDevice{PortID: port.ID, MAC: port.MACAddress, NetworkID: port.NetworkID,
				SubnetID: k.subnetID, SecurityGroups: keyGroups(k), State: state, Owner: owner})
		}
		for _, w := range p.ready {
			add(w.port, v1alpha1.DPDKDeviceReady, "")
		}
		for _, w := range p.warming {
			add(w.port, v1alpha1.DPDKDeviceAttaching, "")
		}
		for _, port := range p.unwired {
			add(port, v1alpha1.DPDKDeviceAttaching, "")
		}
		for _, c := range p.inUse {
			add(c.port, v1alpha1.DPDKDeviceInUse, c.owner)
		}
	}
	for _, l := range out {
		slices.SortFunc(l, func(a, b v1alpha1.DPDKDevice) int { return strings.Compare(a.PortID, b.PortID) })
	}
	return out
}
