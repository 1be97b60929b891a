package controller

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// Pool sizes per node: the options (pools.nestedVLAN, pools.nestedMACVLAN,
// pools.nestedDPDK) size each driver's pools on every node, and a Node's
// annotation, one per driver in one shape, overrides them on that node:
// "min,max" or "min,max,batch" ("0,0" turns that driver's pools off
// there). An annotation applies only where its driver's pools are on.

// DPDKPoolSizeAnnotation on a Node sizes its nested-dpdk pools over
// --pool-nested-dpdk-*.
const DPDKPoolSizeAnnotation = v1alpha1.DPDKPoolSizeAnnotation

// reasonBadPoolSize is the Event on a Node whose pool-size annotation is
// not a size.
const reasonBadPoolSize = "InvalidPoolSize"

// maxVLANID is the highest VLAN ID: a trunk carries at most that many
// subports, and an allowed-address-pair pool is bounded alike (Neutron's
// max_allowed_address_pair is the cloud's setting, lower in most clouds:
// a refill past it is a PoolNotFilled Event with Neutron's reason).
const maxVLANID = 4094

// poolSizeAnnotation is the Node annotation that sizes driver d's pools
// on that node, and the largest number it takes ("" for a driver without
// pools).
func poolSizeAnnotation(d v1alpha1.Driver) (name string, limit int) {
	switch d {
	case v1alpha1.DriverNestedVLAN:
		return v1alpha1.VLANPoolSizeAnnotation, maxVLANID
	case v1alpha1.DriverNestedMACVLAN:
		return v1alpha1.MACVLANPoolSizeAnnotation, maxVLANID
	case v1alpha1.DriverNestedDPDK:
		// Each port takes one of the VM's hot-plug slots.
		return v1alpha1.DPDKPoolSizeAnnotation, maxHotplugSlots
	}
	return "", 0
}

// nodePoolSize returns the size of driver d's pools on node: its
// annotation, else def. Without a batch the annotation's is def's, within
// 1..max. A value that is not a valid size is an error naming the node,
// the annotation and what a size is, and def holds.
func nodePoolSize(node *corev1.Node, d v1alpha1.Driver, def PoolSize) (PoolSize, error) {
	name, limit := poolSizeAnnotation(d)
	v, ok := node.Annotations[name]
	if name == "" || !ok {
		return def, nil
	}
	bad := func(why string) (PoolSize, error) {
		return def, fmt.Errorf("node %s: annotation %s=%q is not \"min,max\" or \"min,max,batch\" (%s); using min %d, max %d, batch %d",
			node.Name, name, v, why, def.Min, def.Max, def.Batch)
	}
	fields := strings.Split(v, ",")
	if len(fields) < 2 || len(fields) > 3 {
		return bad("two or three numbers")
	}
	var n [3]int
	for i, f := range fields {
		x, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || x < 0 || x > limit {
			return bad(fmt.Sprintf("each a number in 0..%d", limit))
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

// poolSize returns the size of driver d's pools on node (its annotation
// over the options, read by nodeOf).
func (r *PodReconciler) poolSize(node nodeInfo, d v1alpha1.Driver) PoolSize {
	return node.Pools.size(d)
}

// nodePoolSizes returns the size of every driver's pools on node
// (sizeFor each).
func (ps *pools) nodePoolSizes(ctx context.Context, node *corev1.Node) PoolOptions {
	return PoolOptions{
		NestedVLAN:    ps.sizeFor(ctx, node, v1alpha1.DriverNestedVLAN),
		NestedMACVLAN: ps.sizeFor(ctx, node, v1alpha1.DriverNestedMACVLAN),
		NestedDPDK:    ps.sizeFor(ctx, node, v1alpha1.DriverNestedDPDK),
	}
}

// sizeFor returns the size of driver d's pools on node: the options, and
// the node's annotation for d where d's pools are on. A bad annotation is
// a Warning Event on the node, once per value.
func (ps *pools) sizeFor(_ context.Context, node *corev1.Node, d v1alpha1.Driver) PoolSize {
	def := ps.r.opts.Pools.size(d)
	if !def.on() {
		return def
	}
	s, err := nodePoolSize(node, d, def)
	name, _ := poolSizeAnnotation(d)
	key, v := node.Name+" "+name, node.Annotations[name]
	ps.mu.Lock()
	report := err != nil && ps.sizeReported[key] != v
	if err != nil {
		ps.sizeReported[key] = v
	} else {
		delete(ps.sizeReported, key)
	}
	ps.mu.Unlock()
	if report {
		ps.r.recorder.Eventf(node, nil, corev1.EventTypeWarning, reasonBadPoolSize, "SizePool", "%s", err.Error())
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
