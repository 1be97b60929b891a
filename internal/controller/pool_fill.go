package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// poolTick is how often the pools are looked at without being woken (a
// warming port turning ACTIVE is not an event the controller sees).
const poolTick = time.Second

// Start implements manager.Runnable: it rebuilds the pools from Neutron,
// then fills them whenever woken (a miss, a take below min, a port given
// back) and every poolTick.
func (ps *pools) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("pools")
	ctx = log.IntoContext(ctx, logger)
	if err := ps.r.waitIdentity(ctx); err != nil {
		return nil // stopped before the cluster was known
	}
	for {
		err := ps.rebuild(ctx)
		if err == nil {
			break
		}
		logger.Error(err, "pools not rebuilt yet: every interface takes the unpooled path")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poolTick):
		}
	}
	t := time.NewTicker(poolTick)
	defer t.Stop()
	for {
		ps.round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ps.kick:
		case <-t.C:
		}
	}
}

// round fills every pool that has work, the pools in parallel (the write
// bound, maxCloudWrites, keeps the cloud's load in check).
func (ps *pools) round(ctx context.Context) {
	ps.declare(ctx)
	ps.mu.Lock()
	var keys, others []poolKey
	for k, p := range ps.byKey {
		if p.short(time.Now()) || len(p.warming)+len(p.unwired)+len(p.unsure) > 0 || !p.size.on() || p.awaitingLost(time.Now()) || p.over() {
			keys = append(keys, k)
		} else {
			others = append(others, k)
		}
	}
	sweep := ps.claimSweep
	ps.mu.Unlock()
	for _, k := range others {
		// A pool of a node that is gone is drained, one whose size the
		// node's annotation changed is resized (reads of the cache).
		n, err := ps.nodeObject(ctx, k.node)
		if apierrors.IsNotFound(err) || err == nil && ps.sizeChanged(ctx, n, k) {
			keys = append(keys, k)
		}
	}
	if sweep {
		if err := ps.sweepClaims(ctx); err != nil {
			log.FromContext(ctx).Info("claim-owned DPDK ports not checked against the ResourceClaims yet", "reason", err.Error())
		} else {
			ps.mu.Lock()
			ps.claimSweep = false
			ps.mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			if err := ps.fill(ctx, k); err != nil {
				log.FromContext(ctx).Info("pool not filled", "node", k.node, "driver", k.driver, "subnet", k.subnetID, "reason", err.Error())
				ps.mu.Lock()
				if p := ps.byKey[k]; p != nil {
					p.lastErr = err.Error()
				}
				ps.mu.Unlock()
			}
		})
	}
	wg.Wait()
	pools := ps.byNode()
	ps.forgetNodes(pools)
	ps.r.metrics.setPoolPorts(pools)
	devices := ps.devicesByNode()
	names := map[string]bool{}
	for _, info := range ps.r.nodes.known() {
		names[info.Name] = true
	}
	for name := range pools {
		names[name] = true
	}
	for name := range names {
		if info, ok := ps.nodeInfo(ctx, name); ok {
			ps.publish(ctx, info, nodePoolStatus{pools: pools[name], devices: devices[name]})
		}
	}
}

// nodeInfo returns what is known of node name in the cloud, looking it up
// if needed (a pool rebuilt after a restart whose node no pod or fill has
// resolved yet); ok is false for a node that is gone or not resolved.
func (ps *pools) nodeInfo(ctx context.Context, name string) (nodeInfo, bool) {
	// resolve reads the cache too, but only given the Node: a known node
	// (every round visits them all) costs no read of its Node here.
	if info, ok := ps.r.nodes.cached(name); ok {
		return info, true
	}
	read := ps.r.nodes.read()
	obj, err := ps.nodeObject(ctx, name)
	if err != nil {
		return nodeInfo{}, false
	}
	info, err := ps.resolve(ctx, obj, read)
	if err != nil {
		return nodeInfo{}, false
	}
	return info, true
}

// resolve returns node's cloud facts (nodes.resolve) for the pools. A
// node whose lookup failed is looked up again only after a backoff (2 s,
// 4 s, ... a minute), its last error returned meanwhile: a pool declared on
// every node reaches nodes that are not VMs of this cloud, and each
// lookup is a Neutron listing. A pod's path (nodes.resolve) does not wait
// for this backoff, and what it resolves is used here at once. node was
// read after read was taken (nodes.resolve).
func (ps *pools) resolve(ctx context.Context, node *corev1.Node, read uint64) (nodeInfo, error) {
	if info, ok := ps.r.nodes.cached(node.Name); ok {
		return info, nil
	}
	now := time.Now()
	ps.resMu.Lock()
	b := ps.unresolved[node.Name]
	if b != nil && now.Before(b.notBefore) {
		ps.resMu.Unlock()
		return nodeInfo{}, b.err
	}
	ps.resMu.Unlock()
	info, _, err := ps.r.nodes.resolve(ctx, node, read)
	ps.resMu.Lock()
	defer ps.resMu.Unlock()
	if err == nil {
		delete(ps.unresolved, node.Name)
		return info, nil
	}
	if b == nil {
		b = &lookupBackoff{}
		ps.unresolved[node.Name] = b
	}
	b.failures++
	b.err, b.notBefore = err, now.Add(backoff(b.failures))
	log.FromContext(ctx).Info("node of a pool not resolved: its pools are not filled nor its KuryrNode recorded", "node", node.Name,
		"reason", err.Error(), "retryIn", backoff(b.failures).String())
	return nodeInfo{}, err
}

// publish writes the pools and DPDK devices of node info, st as the round
// saw them, into its KuryrNode (a cache for operators, kuryrctl pools,
// and for the node's daemon, which reads dpdkDevices) unless it shows them
// already (nodeShows): what it shows is what the last write made it,
// whichever path wrote it (a pod's take records its owner at once,
// recordOwners), so a port taken and given back between two rounds is
// written back as the pool's. A write that failed is tried again by the
// next round.
func (ps *pools) publish(ctx context.Context, info nodeInfo, st nodePoolStatus) {
	defer ps.r.lockNode(info.Name)()
	if ps.r.nodeShows(info.Name, st) {
		return
	}
	if err := ps.r.recordNodeLocked(ctx, info); err != nil {
		log.FromContext(ctx).Info("KuryrNode pools not recorded", "node", info.Name, "reason", err.Error())
	}
}

// publishNode writes node name's pools and DPDK devices into its KuryrNode
// now, not at the next round: a claim's daemon waits for its owner there.
func (ps *pools) publishNode(ctx context.Context, name string) error {
	info, ok := ps.nodeInfo(ctx, name)
	if !ok {
		return nil
	}
	return ps.r.recordNode(ctx, info)
}

// fill brings one pool towards its min: one bulk create of a batch, one
// wiring call for every port not known wired, then, when there is
// something to learn, a listing of the node's pool ports (refresh) that
// promotes the ACTIVE ones, adopts ports a lost answer hid (a create that
// timed out is found by its tags before another batch is made) and
// settles unsure takes.
func (ps *pools) fill(ctx context.Context, key poolKey) error {
	start := time.Now()
	read := ps.r.nodes.read()
	nodeObj, err := ps.nodeObject(ctx, key.node)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get node %s: %w", key.node, err)
	}
	var size PoolSize
	if err == nil {
		size = ps.sizeFor(ctx, nodeObj, key.driver)
	}
	if !size.on() {
		// The node is gone (or its driver's pools were turned off, for
		// all nodes or this one): its idle ports are released; ports of
		// pods and claims are their consumers' business.
		return ps.drain(ctx, key)
	}
	node, err := ps.resolve(ctx, nodeObj, read)
	if err != nil {
		// Not tried again before the pool's backoff either (the round
		// would report the same error every second).
		ps.notFilled(nodeObj, key, err)
		return err
	}
	node.HotplugSlots, _ = hotplugLimit(nodeObj, ps.r.opts.HotplugSlots)
	drv, err := ps.r.drivers.get(key.driver)
	if err != nil {
		return err
	}
	wirer, ok := drv.(poolWirer)
	if !ok {
		return fmt.Errorf("driver %s has no pools", key.driver)
	}

	ps.mu.Lock()
	p := ps.byKey[key]
	if p == nil {
		ps.mu.Unlock()
		return nil
	}
	p.size = size
	n := min(p.size.Batch, p.size.Max-p.idle())
	if !p.short(start) {
		n = 0
	}
	slotWait := start.Before(p.noSlotUntil)
	ps.mu.Unlock()
	var errs []error
	if slotWait {
		// The VM's hot-plug slots are full: nothing is made or attached
		// until the wait is over (each look may read Neutron). Ports
		// given back still attached are checked below all the same.
		n = 0
	}
	if err := nodeHoldsPools(node, key.driver); n > 0 && err != nil {
		// A declared pool on a node that cannot wire its ports: none is
		// made (no pod would take one, pools.eligible).
		errs, n = append(errs, err), 0
	}
	if n > 0 && key.driver == v1alpha1.DriverNestedDPDK {
		// Never plan past the VM's hot-plug slots: a port made for none
		// would wait unattached.
		var full *errNoHotplugSlot
		if n, err = ps.withinSlots(ctx, key, nodeObj, node, n); errors.As(err, &full) {
			errs, n, slotWait = append(errs, err), 0, true
		} else if err != nil {
			return err
		}
	}

	if n > 0 {
		made, err := ps.create(ctx, key, node, drv, n)
		if err != nil {
			ps.notFilled(nodeObj, key, err)
			errs = append(errs, err)
		}
		ps.mu.Lock()
		// The slots planned are held by the ports made from now on.
		p.making = 0
		for _, port := range made {
			p.unwired[port.ID] = port
		}
		if err != nil {
			if openstack.IsRetryable(err, false) {
				p.lostAt = time.Now()
			}
		} else {
			p.failures, p.notBefore = 0, time.Time{}
		}
		ps.mu.Unlock()
	}

	ps.mu.Lock()
	var todo []openstack.Port
	for _, port := range p.unwired {
		// With the slots full, only ports attached already (a
		// consumer's, given back) are checked: no attach is asked.
		if !slotWait || port.DeviceID != "" {
			todo = append(todo, port)
		}
	}
	// In one order, so that a failure the cloud repeats reads the same
	// (its Event is one series, notFilled).
	slices.SortFunc(todo, func(a, b openstack.Port) int { return strings.Compare(a.ID, b.ID) })
	// Nova attaches that failed are not asked again every round: they
	// wait for the pool's backoff.
	held := key.driver == v1alpha1.DriverNestedDPDK && time.Now().Before(p.notBefore)
	ps.mu.Unlock()
	wired := len(todo) > 0 && !held
	if wired {
		vids, err := wirer.wireBatch(ctx, node, fmt.Sprintf("pool of node %s on subnet %s", key.node, key.subnetID), todo)
		var full *errNoHotplugSlot
		switch {
		case errors.As(err, &full):
			errs = append(errs, err)
			ps.noSlot(ctx, key, nodeObj, err)
		case err != nil:
			// Nova's attach, add_subports or the update of the VM
			// port's allowed address pairs fails: no new batch for a
			// while, and nested-dpdk interfaces stop waiting for this
			// pool (pool.delivering).
			errs = append(errs, err)
			ps.notFilled(nodeObj, key, err)
		case key.driver == v1alpha1.DriverNestedDPDK:
			// Its wiring waits for the backoff (held): a success
			// says the pool works again. Other drivers' wiring does
			// not wait, and its success says nothing of a create
			// that failed.
			ps.mu.Lock()
			p.failures, p.notBefore = 0, time.Time{}
			ps.mu.Unlock()
		}
		ps.mu.Lock()
		for _, port := range todo {
			// After a failure, the ports the driver reports wired
			// (nested-dpdk attaches each port on its own) are.
			if _, wired := vids[port.ID]; err != nil && !wired {
				continue
			}
			if _, still := p.unwired[port.ID]; still {
				delete(p.unwired, port.ID)
				p.warming[port.ID] = wiring{port: port, vlanID: vids[port.ID]}
			}
		}
		ps.mu.Unlock()
	}
	if wired {
		// The ports made by this fill are wired (or their wiring failed)
		// by now: a listing that shows them starts after.
		ps.mu.Lock()
		p.wiredAt = time.Now()
		ps.mu.Unlock()
	}
	if err := ps.refresh(ctx, key, node, drv); err != nil {
		errs = append(errs, err)
	}
	if err := ps.shrink(ctx, key); err != nil {
		errs = append(errs, err)
	}
	err = errors.Join(errs...)
	ps.mu.Lock()
	if err == nil {
		p.lastErr = ""
	}
	short := p.short(time.Now())
	ps.mu.Unlock()
	if n > 0 {
		ps.r.metrics.poolFill.Observe(time.Since(start).Seconds())
	}
	if short && err == nil {
		ps.wake()
	}
	return err
}

// notFilled records a refill of pool key that failed (its node's lookup,
// the create of a batch, or the wiring of its ports: a Nova attach, an
// add_subports, an update of the VM port's allowed address pairs) and
// reports it: a Warning Event PoolNotFilled on node with the cloud's
// reason. The pool backs off (no new batch before 2 s, 4 s, ... a
// minute); a failure while it does (nested-vlan and nested-macvlan wiring
// is tried again every round) is neither counted nor reported, so the
// Events of a pool come at the pace of its refills, whichever step failed,
// and the recorder makes one series of those that say the same.
func (ps *pools) notFilled(node *corev1.Node, key poolKey, err error) {
	now := time.Now()
	ps.mu.Lock()
	p := ps.byKey[key]
	due := p != nil && !now.Before(p.notBefore)
	if due {
		p.failed(now)
	}
	ps.mu.Unlock()
	if due {
		ps.r.recorder.Eventf(node, nil, corev1.EventTypeWarning, reasonPoolFill, "FillPool",
			"pool of %s ports on subnet %s not filled: %s", key.driver, key.subnetID, err.Error())
	}
}

// create makes n ports of pool key in one bulk request. The subnet and
// network are read here (and cached), so that a pod taking one of these
// ports finds them known.
func (ps *pools) create(ctx context.Context, key poolKey, node nodeInfo, drv portDriver, n int) ([]openstack.Port, error) {
	subnet, err := ps.r.nets.subnet(ctx, key.subnetID)
	if err != nil {
		return nil, fmt.Errorf("subnet %s of pool of node %s: %w", key.subnetID, key.node, err)
	}
	if _, err := ps.r.nets.network(ctx, subnet.NetworkID); err != nil {
		return nil, fmt.Errorf("network %s of pool of node %s: %w", subnet.NetworkID, key.node, err)
	}
	specs := make([]openstack.PortSpec, 0, n)
	for range n {
		spec := openstack.PortSpec{
			NetworkID: subnet.NetworkID, SubnetID: subnet.ID, Name: poolPortName(key.node),
			SecurityGroups: keyGroups(key),
			Tags:           append(portTags(ps.r.cluster(), key.driver), tagPrefixPool+key.node),
		}
		drv.prepare(node, &spec)
		specs = append(specs, spec)
	}
	made, err := ps.r.cloud.CreatePorts(ctx, specs)
	if err != nil {
		return made, fmt.Errorf("create %d ports for the pool of node %s on subnet %s: %w", n, key.node, key.subnetID, err)
	}
	ps.r.metrics.portsCreated.WithLabelValues(string(key.driver)).Add(float64(len(made)))
	return made, nil
}

// refresh brings pool key in line with what Neutron says of its node's
// pool ports (see fill), when there is something to learn: ports warming
// (a port turning ACTIVE is not an event the controller sees), a take
// unsure, a lost create whose ports may still show. It reads the node's
// latest listing (pools.listNode) if that started after the pool's ports
// were last made or wired and at most poolTick ago, else lists the node
// again: the pools of one node share a listing, and a round woken by a
// take lists nothing new. A pool with nothing to learn is not listed.
func (ps *pools) refresh(ctx context.Context, key poolKey, node nodeInfo, drv portDriver) error {
	now := time.Now()
	ps.mu.Lock()
	p := ps.byKey[key]
	pending := p != nil && (len(p.warming)+len(p.unsure) > 0 || p.awaitingLost(now))
	var after time.Time
	if p != nil {
		after = p.wiredAt
	}
	ps.mu.Unlock()
	if !pending {
		return nil
	}
	listed, started, err := ps.listNode(ctx, key.node, maxTime(after, now.Add(-poolTick)))
	if err != nil {
		return err
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p = ps.byKey[key]; p == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, lp := range listed {
		if k, ok := keyOfPort(lp); !ok || k != key {
			continue
		}
		seen[lp.ID] = true
		owner := ownerOf(lp.Tags)
		owned := owner != ""
		c, used := p.inUse[lp.ID]
		switch w, warming := p.warming[lp.ID]; {
		case used:
			at, unsure := p.unsure[lp.ID]
			switch {
			case unsure && at.Before(started):
				// This listing began after the failed tag write: it
				// says whether the write landed.
				delete(p.unsure, lp.ID)
				if !owned {
					delete(p.inUse, lp.ID)
					p.unwired[lp.ID] = lp
				}
			case !unsure && owner == c.owner:
				c.port = lp
				p.inUse[lp.ID] = c
			}
		case warming:
			if drv.active(node, lp) {
				delete(p.warming, lp.ID)
				w.port = lp
				p.ready = append(p.ready, w)
			}
		case p.has(lp.ID) || p.deleted[lp.ID]:
		case owned:
			p.inUse[lp.ID] = consumer{owner: owner, port: lp}
		default:
			// Made by a create whose answer was lost.
			p.unwired[lp.ID] = lp
		}
	}
	for id := range p.warming {
		if !seen[id] {
			p.forget(id)
		}
	}
	for id := range p.deleted {
		if !seen[id] {
			delete(p.deleted, id)
		}
	}
	return nil
}

// listNode returns the pool ports of node (every pool's) from a listing
// that started no earlier than after, and when it started: the node's last
// listing if it is recent enough, else a new one. The pools of one node
// filled at once wait for one another's listing here, and take it when it
// is recent enough for them.
func (ps *pools) listNode(ctx context.Context, node string, after time.Time) ([]openstack.Port, time.Time, error) {
	ps.listMu.Lock()
	l := ps.listings[node]
	if l == nil {
		l = &nodeListing{}
		ps.listings[node] = l
	}
	ps.listMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started.IsZero() && !l.started.Before(after) {
		return l.ports, l.started, nil
	}
	started := time.Now()
	ports, err := ps.r.cloud.ListPorts(ctx, openstack.PortFilter{Tags: []string{clusterTag(ps.r.opts.ClusterID), tagPrefixPool + node},
		ProjectID: ps.r.cloud.ProjectID()})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("list the pool ports of node %s: %w", node, err)
	}
	l.started, l.ports = started, ports
	return ports, started, nil
}

// forgetNodes drops the listings and the lookup backoffs of nodes that
// have no pool left in pools (pools.byNode): a deleted node's pools are
// drained and dropped (fill), and then so is what the pools kept of it.
func (ps *pools) forgetNodes(pools map[string][]v1alpha1.NodePool) {
	ps.listMu.Lock()
	for n := range ps.listings {
		if _, ok := pools[n]; !ok {
			delete(ps.listings, n)
		}
	}
	ps.listMu.Unlock()
	ps.resMu.Lock()
	defer ps.resMu.Unlock()
	for n := range ps.unresolved {
		if _, ok := pools[n]; !ok {
			delete(ps.unresolved, n)
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// drain releases the idle ports of pool key (its node is gone, or its
// driver's pools are off) and drops the pool once it has none.
func (ps *pools) drain(ctx context.Context, key poolKey) error {
	ps.mu.Lock()
	p := ps.byKey[key]
	if p == nil {
		ps.mu.Unlock()
		return nil
	}
	var idle []openstack.Port
	for _, w := range p.ready {
		idle = append(idle, w.port)
	}
	for _, w := range p.warming {
		idle = append(idle, w.port)
	}
	for _, port := range p.unwired {
		idle = append(idle, port)
	}
	for _, port := range p.leaving {
		idle = append(idle, port)
	}
	ps.mu.Unlock()
	var errs []error
	for _, port := range idle {
		if err := ps.r.releasePort(ctx, port); err != nil && !errors.Is(err, errDetachPending) {
			errs = append(errs, err)
		}
	}
	ps.mu.Lock()
	if p.idle() == 0 && len(p.inUse) == 0 && len(p.leaving) == 0 && ps.byKey[key] == p {
		delete(ps.byKey, key)
	}
	ps.mu.Unlock()
	return errors.Join(errs...)
}

func keyGroups(k poolKey) []string {
	if k.groups == "" {
		return nil
	}
	return splitList(k.groups)
}

func poolPortName(node string) string {
	n := "kuryr-pool-" + node
	if len(n) > 255 {
		n = n[:255]
	}
	return n
}

// declare makes the declared pools (pools.nestedVLANNetworks,
// nestedMACVLANNetworks, nestedDPDKNetworks) on every node that has none
// yet (once the pools are rebuilt from Neutron, so that a restart adopts
// the ports it made before): they are filled like any other, ahead of any
// pod or claim. A node whose pools of a driver are off (its annotation
// "0,0") gets none of that driver. A declared pool's key is the one a
// pod's interface on that network looks for (declaredGroups).
func (ps *pools) declare(ctx context.Context) {
	var drivers []driverPools
	for _, d := range ps.r.opts.Pools.byDriver() {
		if len(d.networks) > 0 {
			drivers = append(drivers, d)
		}
	}
	ps.mu.Lock()
	loaded := ps.loaded
	ps.mu.Unlock()
	if len(drivers) == 0 || !loaded {
		return
	}
	var nodes corev1.NodeList
	if err := ps.r.client.List(ctx, &nodes); err != nil {
		log.FromContext(ctx).Info("declared pools not made yet", "reason", err.Error())
		return
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if n.DeletionTimestamp != nil {
			continue
		}
		for _, d := range drivers {
			size := ps.sizeFor(ctx, n, d.driver)
			if !size.on() {
				continue
			}
			ps.mu.Lock()
			for _, net := range d.networks {
				key := newPoolKey(n.Name, d.driver, net.SubnetID, ps.r.opts.declaredGroups(net))
				if ps.byKey[key] == nil {
					ps.byKey[key] = newPool(size)
				}
			}
			ps.mu.Unlock()
		}
	}
}
