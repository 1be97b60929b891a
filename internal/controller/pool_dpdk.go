package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// What is particular to the pools of nested-dpdk ports: Nova attaches them
// ahead of any consumer, within the VM's hot-plug slots; their size can be
// set per node; and status.dpdkDevices of the node's KuryrNode lists them,
// each with its state and owner, for the node's daemon and the DRA driver.

// DPDKPoolSizeAnnotation on a Node sizes its nested-dpdk pools, "min,max"
// or "min,max,batch", over --pool-nested-dpdk-*; "0,0" turns them off on
// that node. It applies where the DPDK pools are on (pools.nestedDPDK).
const DPDKPoolSizeAnnotation = v1alpha1.DPDKPoolSizeAnnotation

// reasonBadPoolSize is the Event on a Node whose annotation is not a size.
const reasonBadPoolSize = "InvalidDPDKPoolSize"

// slotRecheck is how long a nested-dpdk pool whose VM had no free hot-plug
// slot waits before it looks again (a look may read Neutron).
const slotRecheck = 5 * time.Second

// dpdkPoolSize returns the size of node's nested-dpdk pools: its
// annotation, else def. Without a batch the annotation's is def's, within
// 1..max. A value that is not a valid size is an error naming the node and
// the annotation, and def holds.
func dpdkPoolSize(node *corev1.Node, def PoolSize) (PoolSize, error) {
	v, ok := node.Annotations[DPDKPoolSizeAnnotation]
	if !ok {
		return def, nil
	}
	bad := func(why string) (PoolSize, error) {
		return def, fmt.Errorf("node %s: annotation %s=%q is not \"min,max\" or \"min,max,batch\" (%s); using min %d, max %d, batch %d",
			node.Name, DPDKPoolSizeAnnotation, v, why, def.Min, def.Max, def.Batch)
	}
	fields := strings.Split(v, ",")
	if len(fields) < 2 || len(fields) > 3 {
		return bad("two or three numbers")
	}
	var n [3]int
	for i, f := range fields {
		x, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || x < 0 || x > maxHotplugSlots {
			return bad(fmt.Sprintf("each a number in 0..%d", maxHotplugSlots))
		}
		n[i] = x
	}
	s := PoolSize{Min: n[0], Max: n[1], Batch: n[2]}
	if len(fields) == 2 {
		s.Batch = min(max(def.Batch, 1), s.Max)
	}
	if s.Max == 0 && s.Min == 0 {
		return PoolSize{}, nil
	}
	if err := s.validate(); err != nil {
		if err.field != "" {
			return bad(strings.TrimPrefix(err.field, ".") + " " + err.msg)
		}
		return bad(err.msg)
	}
	return s, nil
}

// poolSize returns the size of driver d's pools on node.
func (r *PodReconciler) poolSize(node nodeInfo, d v1alpha1.Driver) PoolSize {
	if d == v1alpha1.DriverNestedDPDK {
		return node.DPDKPool
	}
	return r.opts.Pools.size(d)
}

// sizeFor returns the size of driver d's pools on node: the options, and
// for nested-dpdk the node's annotation where the DPDK pools are on. A bad
// annotation is a Warning Event on the node, once per value.
func (ps *pools) sizeFor(_ context.Context, node *corev1.Node, d v1alpha1.Driver) PoolSize {
	def := ps.r.opts.Pools.size(d)
	if d != v1alpha1.DriverNestedDPDK || !def.on() {
		return def
	}
	s, err := dpdkPoolSize(node, def)
	v := node.Annotations[DPDKPoolSizeAnnotation]
	ps.mu.Lock()
	report := err != nil && ps.sizeReported[node.Name] != v
	if err != nil {
		ps.sizeReported[node.Name] = v
	} else {
		delete(ps.sizeReported, node.Name)
	}
	ps.mu.Unlock()
	if report {
		ps.r.recorder.Eventf(node, nil, corev1.EventTypeWarning, reasonBadPoolSize, "SizeDPDKPool", "%s", err.Error())
	}
	return s
}

// sizeChanged says whether pool k's size differs from what node says now.
func (ps *pools) sizeChanged(ctx context.Context, node *corev1.Node, k poolKey) bool {
	s := ps.sizeFor(ctx, node, k.driver)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.byKey[k]
	return p != nil && p.size != s
}

// withinSlots returns how many of n new ports of nested-dpdk pool key the
// VM of node has free hot-plug slots for, after the pool's ports made and
// not attached yet. None: an errNoHotplugSlot.
func (ps *pools) withinSlots(ctx context.Context, key poolKey, nodeObj *corev1.Node, node nodeInfo, n int) (int, error) {
	limit, used, err := ps.r.slots.room(ctx, node)
	if err != nil || limit == 0 {
		return n, err
	}
	ps.mu.Lock()
	pending := 0
	if p := ps.byKey[key]; p != nil {
		for _, port := range p.unwired {
			if port.DeviceID == "" {
				pending++
			}
		}
	}
	ps.mu.Unlock()
	free := limit - used - pending
	if free <= 0 {
		err := &errNoHotplugSlot{node: node.Name, limit: limit, used: used}
		ps.noSlot(ctx, key, nodeObj, err)
		return 0, err
	}
	ps.mu.Lock()
	if p := ps.byKey[key]; p != nil {
		p.slotsFull = false
	}
	ps.mu.Unlock()
	return min(n, free), nil
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
