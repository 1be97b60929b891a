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
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// Pools keep ports made and wired ahead of any pod, per (node, driver,
// subnet, security groups), so that a pod's interface costs one Neutron
// call: the tag write that records its owner. The tags are the lock and the
// record: a pooled port carries the cluster's tags, its driver's, and
// kuryr-pool=<node>; taking it adds kuryr-pod and kuryr-ifname (one
// PUT /ports/{id}/tags), giving it back removes them. After a restart the
// pools are rebuilt from Neutron alone: a port with a pod tag is that pod's,
// one without is ready again (once its wiring is checked).
//
// Which interfaces a pool can serve: nested-vlan, nested-macvlan and
// nested-dpdk ones that name their security groups and ask for no fixed IP
// or MAC; the others take the unpooled path. A pool is made by the first
// interface that misses it (and by the rebuild); it is refilled in the
// background (fill in pool_fill.go). A nested-dpdk pool's ports are
// attached by Nova ahead of any consumer, and a ResourceClaim of the DRA
// driver can take one too (kuryr-claim=<claim UID>, claims.go).
type pools struct {
	r    *PodReconciler
	kick chan struct{}

	mu     sync.Mutex
	byKey  map[poolKey]*pool
	loaded bool // rebuilt from Neutron: until then every take misses

	// claimSweep: the claim-owned ports are to be checked against the
	// ResourceClaims that exist (after the rebuild: claims deleted while
	// the controller was down).
	claimSweep bool
	// sizeReported is the bad pool-size annotation last reported, by
	// node and annotation (an Event once per value, not once per round).
	sizeReported map[string]string

	// listings are each node's last listing of its pool ports, which
	// every pool of the node reads (pools.refresh).
	listMu   sync.Mutex
	listings map[string]*nodeListing

	// unresolved are the nodes of pools whose cloud lookup failed (a
	// node that is not a VM of this cloud, or not yet): each is looked up
	// again only after its backoff, not every round. A node's entry goes
	// with its last pool (forgetNodes).
	resMu      sync.Mutex
	unresolved map[string]*lookupBackoff
}

// lookupBackoff is a node's failed lookups in a row, the last error, and
// when the next lookup may go.
type lookupBackoff struct {
	failures  int
	err       error
	notBefore time.Time
}

// backoff is the wait after failures failed tries in a row: 2 s, 4 s, ...
// up to a minute.
func backoff(failures int) time.Duration {
	return min(time.Second<<min(failures, 6), time.Minute)
}

// nodeListing is one node's last listing of its pool ports and when it
// started.
type nodeListing struct {
	mu      sync.Mutex
	started time.Time
	ports   []openstack.Port
}

// nodePoolStatus is what the pools write into one KuryrNode.
type nodePoolStatus struct {
	pools   []v1alpha1.NodePool
	devices []v1alpha1.DPDKDevice
}

// poolKey names one pool. groups is the sorted, comma-joined security
// group IDs.
type poolKey struct {
	node     string
	driver   v1alpha1.Driver
	subnetID string
	groups   string
}

func newPoolKey(node string, d v1alpha1.Driver, subnetID string, groups []string) poolKey {
	g := slices.Clone(groups)
	slices.Sort(g)
	return poolKey{node: node, driver: d, subnetID: subnetID, groups: strings.Join(slices.Compact(g), ",")}
}

// keyOfPort reads the pool of port p from its own tags and fields; ok is
// false for a port made for a pod.
func keyOfPort(p openstack.Port) (poolKey, bool) {
	node := tagValue(p.Tags, tagPrefixPool)
	d := tagValue(p.Tags, tagPrefixDriver)
	if node == "" || d == "" || len(p.FixedIPs) == 0 {
		return poolKey{}, false
	}
	return newPoolKey(node, v1alpha1.Driver(d), p.FixedIPs[0].SubnetID, p.SecurityGroups), true
}

// pool is one pool's ports, each in exactly one of the sets.
type pool struct {
	size PoolSize
	// ready ports are wired and ACTIVE: a pod gets one as it is.
	ready []wiring
	// warming ports are wired and not ACTIVE yet (or not read since).
	warming map[string]wiring
	// unwired ports were made (or found after a restart, or given back)
	// and their wiring is not known to be done.
	unwired map[string]openstack.Port
	// inUse ports belong to a consumer, a pod or a claim (its tag is
	// written, or being written).
	inUse map[string]consumer
	// unsure ports are in use, but the write of their pod's tag failed: a
	// listing that started after the failure says whether it landed.
	unsure map[string]time.Time
	// leaving ports were ready and are being released to bring the pool
	// down to its max (shrink): never handed out again, released (unwired,
	// deleted) every round until gone.
	leaving map[string]openstack.Port
	// deleted ports were released here; a listing older than the delete
	// must not bring them back.
	deleted map[string]bool
	// noSlotUntil: the node's VM had no free hot-plug slot for this
	// nested-dpdk pool; no port is made or attached before then.
	noSlotUntil time.Time
	// slotsFull: the last look found no free slot (its Event is made).
	slotsFull bool
	// making is how many ports the create under way makes for this
	// nested-dpdk pool: the hot-plug slots planned for them, which the
	// node's other pools do not plan with (withinSlots).
	making int

	lastErr string
	// wiredAt is when a fill last made or wired ports of this pool: only
	// a listing that started after it shows them (pools.refresh).
	wiredAt time.Time
	// lostAt is when a create of this pool failed without an answer (a
	// timeout, a 5xx): Neutron may still make its ports, later than the
	// listing right after the failure. Until lostWait has passed the pool
	// is listed every round (to adopt them) and makes no new batch.
	lostAt time.Time
	// failures counts refills failed in a row; none is tried before
	// notBefore (exponential backoff: a full subnet or an exhausted quota
	// is not asked again every second).
	failures  int
	notBefore time.Time
}

// lostWait is how long the ports of a create whose answer was lost may
// take to appear. Neutron finishes what it accepted, but on the loaded
// bench machine a 50-port bulk create took more than twice the client's
// 30 s timeout: four request timeouts.
const lostWait = 4 * openstack.DefaultRequestTimeout

// short says whether the pool wants a refill now.
func (p *pool) short(now time.Time) bool {
	return p.idle() < p.size.Min && !now.Before(p.notBefore) && !p.awaitingLost(now)
}

// delivering says whether the pool is about to have a ready port: ports
// are being wired, or it is short and its next refill may go (no failure
// and no full hot-plug slots in the way).
func (p *pool) delivering(now time.Time) bool {
	return p.size.on() && p.failures == 0 && !p.slotsFull &&
		(len(p.warming)+len(p.unwired) > 0 || p.short(now))
}

// awaitingLost says whether ports of a lost create may still appear.
func (p *pool) awaitingLost(now time.Time) bool {
	return !p.lostAt.IsZero() && now.Sub(p.lostAt) < lostWait
}

// failed records a failed refill and returns when the next may be tried.
func (p *pool) failed(now time.Time) {
	p.failures++
	p.notBefore = now.Add(backoff(p.failures))
}

// consumer holds an in-use pool port: owner is "pod/<uid>" or
// "claim/<uid>" (as status.dpdkDevices shows it), port the port as last
// seen.
type consumer struct {
	owner string
	port  openstack.Port
}

// Owners of in-use pool ports, as status.dpdkDevices names them.
const (
	ownerPod   = v1alpha1.DPDKOwnerPod
	ownerClaim = v1alpha1.DPDKOwnerClaim
)

// ownerOf reads who holds a pool port from its tags ("" for none).
func ownerOf(tags []string) string {
	if uid := tagValue(tags, tagPrefixPod); uid != "" {
		return ownerPod + uid
	}
	if uid := tagValue(tags, tagPrefixClaim); uid != "" {
		return ownerClaim + uid
	}
	return ""
}

func newPool(size PoolSize) *pool {
	return &pool{size: size, warming: map[string]wiring{}, unwired: map[string]openstack.Port{},
		inUse: map[string]consumer{}, unsure: map[string]time.Time{}, leaving: map[string]openstack.Port{}, deleted: map[string]bool{}}
}

// idle counts the ports no consumer has (those leaving apart).
func (p *pool) idle() int { return len(p.ready) + len(p.warming) + len(p.unwired) }

// over says whether the pool has idle ports past its max to release, or
// ports still leaving.
func (p *pool) over() bool { return p.size.on() && p.idle() > p.size.Max || len(p.leaving) > 0 }

// newestReady returns the index in p.ready of the newest ready port that
// skip does not name, -1 for none: takes hand out the newest, shrink
// releases the oldest.
func (p *pool) newestReady(skip map[string]bool) int {
	for i := len(p.ready) - 1; i >= 0; i-- {
		if !skip[p.ready[i].port.ID] {
			return i
		}
	}
	return -1
}

// forget drops port id from every set.
func (p *pool) forget(id string) {
	p.ready = slices.DeleteFunc(p.ready, func(w wiring) bool { return w.port.ID == id })
	delete(p.warming, id)
	delete(p.unwired, id)
	delete(p.inUse, id)
	delete(p.unsure, id)
	delete(p.leaving, id)
}

func (p *pool) has(id string) bool {
	_, w := p.warming[id]
	_, u := p.unwired[id]
	_, i := p.inUse[id]
	_, l := p.leaving[id]
	return w || u || i || l || slices.ContainsFunc(p.ready, func(w wiring) bool { return w.port.ID == id })
}

func newPools(r *PodReconciler) *pools {
	return &pools{r: r, kick: make(chan struct{}, 1), byKey: map[poolKey]*pool{},
		sizeReported: map[string]string{}, listings: map[string]*nodeListing{}, unresolved: map[string]*lookupBackoff{}}
}

var _ manager.LeaderElectionRunnable = (*pools)(nil)

// NeedLeaderElection implements manager.LeaderElectionRunnable: only the
// leader fills, as only it reconciles pods.
func (ps *pools) NeedLeaderElection() bool { return true }

// any says whether some driver has pools.
func (o PoolOptions) any() bool {
	return o.NestedVLAN.on() || o.NestedMACVLAN.on() || o.NestedDPDK.on()
}

// wake asks the fill loop for a round without waiting for it.
func (ps *pools) wake() {
	select {
	case ps.kick <- struct{}{}:
	default:
	}
}

// eligible returns the pool that could serve req on node. A request for
// its own addresses, MAC or port security settings is never pooled: pooled
// ports are made alike, before any request.
func (ps *pools) eligible(node nodeInfo, req v1alpha1.InterfaceRequest) (poolKey, bool) {
	if !ps.r.poolSize(node, req.Driver).on() || req.MAC != "" || len(req.IPs) > 0 || len(req.SecurityGroups) == 0 ||
		req.PortSecurityEnabled != nil || len(req.AllowedAddressPairs) > 0 {
		return poolKey{}, false
	}
	if nodeHoldsPools(node, req.Driver) != nil {
		return poolKey{}, false
	}
	return newPoolKey(node.Name, req.Driver, req.SubnetID, req.SecurityGroups), true
}

// nodeHoldsPools says why node cannot hold pools of driver d (nil: it
// can): nested-vlan ports are subports of the VM port's trunk, nested-dpdk
// ports are attached to its Nova server.
func nodeHoldsPools(node nodeInfo, d v1alpha1.Driver) error {
	switch {
	case d == v1alpha1.DriverNestedVLAN && node.TrunkID == "":
		return fmt.Errorf("node %s's port is not a trunk parent: no nested-vlan pool", node.Name)
	case d == v1alpha1.DriverNestedDPDK && node.ServerID == "":
		return fmt.Errorf("node %s has no Nova server: no nested-dpdk pool", node.Name)
	}
	return nil
}

// errWaitPool says a nested-dpdk interface missed its pool while the pool
// is attaching ports for it: the interface waits for one (Pending) rather
// than attaching one of its own. A Nova attach takes seconds either way,
// and a second attach would take a hot-plug slot the pool planned with.
var errWaitPool = errors.New("waiting for a pre-attached DPDK port of the node's pool")

// waitedForPool says whether status entry e shows its interface waiting
// for its pool (errWaitPool, wireOne): its take counted the miss already.
func waitedForPool(e v1alpha1.InterfaceStatus) bool {
	return e.State == v1alpha1.StatePending && e.PortID == "" && e.Message == errWaitPool.Error()
}

// take hands a ready port of req's pool to the pod with uid: one Neutron
// call, the tag write that records the owner. ok is false on a miss (no
// pool serves req, or it has no ready port for a pod: the pool is made or
// refilled in the background and the caller takes the unpooled path), and
// the error is errWaitPool when a nested-dpdk pool is attaching ports the
// caller should wait for. Each is counted in
// kuryr_controller_pool_takes_total, an interface that waits as one miss:
// waited says it waited already (its status says so, waitedForPool), and
// its take is not counted again, neither the port it gets in the end (a
// hit that took seconds) nor a miss if the pool stops delivering.
//
// A ready nested-dpdk port that a ResourceClaim's allocation names is not
// a pod's to take: the scheduler gave it to the claim, whose controller
// may not have tagged it yet (claims.go). The claims are read from the
// cache, before the pools' lock; a claim allocated after that read, or
// not in the cache yet, can still lose its device to a pod (it is then
// refused, DPDKDeviceInUse, and tried again).
func (ps *pools) take(ctx context.Context, node nodeInfo, uid types.UID, req v1alpha1.InterfaceRequest, waited bool) (w wiring, ok bool, err error) {
	key, ok := ps.eligible(node, req)
	if !ok {
		return wiring{}, false, nil
	}
	count := func(result string) {
		if !waited {
			ps.r.metrics.poolTakes.WithLabelValues(string(req.Driver), result).Inc()
		}
	}
	var allocated map[string]bool
	if req.Driver == v1alpha1.DriverNestedDPDK {
		if allocated, err = ps.allocatedPorts(ctx); err != nil {
			return wiring{}, false, fmt.Errorf("take a pooled port for interface %s of pod %s: %w", req.IfName, uid, err)
		}
	}
	ps.mu.Lock()
	p := ps.byKey[key]
	made := false
	if p == nil && ps.loaded {
		p = newPool(ps.r.poolSize(node, req.Driver))
		ps.byKey[key] = p
		made = true
	}
	i := -1
	if p != nil {
		i = p.newestReady(allocated)
	}
	if i < 0 {
		wait := p != nil && req.Driver == v1alpha1.DriverNestedDPDK && p.delivering(time.Now())
		ps.mu.Unlock()
		if wait {
			// The pool is at work already: a waiting interface's polls
			// do not wake it again (each round lists its ports).
			if made {
				ps.wake()
			}
			count("miss")
			return wiring{}, false, errWaitPool
		}
		ps.wake()
		count("miss")
		return wiring{}, false, nil
	}
	w = p.ready[i]
	p.ready = slices.Delete(p.ready, i, i+1)
	owner := ownerPod + string(uid)
	p.inUse[w.port.ID] = consumer{owner: owner, port: w.port}
	low := p.idle() < p.size.Min
	ps.mu.Unlock()
	if low {
		ps.wake()
	}

	if w.port, err = ps.handOut(ctx, p, w.port, owner, ownerTags(uid, req.IfName)); err != nil {
		return wiring{}, false, fmt.Errorf("take pooled port %s for interface %s of pod %s: %w", w.port.ID, req.IfName, uid, err)
	}
	count("hit")
	return w, true, nil
}

// handOut writes the tags that give pool port port of p (in p.inUse
// already, under owner) to its consumer: one Neutron call, the port's tags
// without any previous owner's plus owned. A write that fails leaves the
// port unsure: a later listing says whether it landed.
func (ps *pools) handOut(ctx context.Context, p *pool, port openstack.Port, owner string, owned []string) (openstack.Port, error) {
	got, err := ps.r.cloud.ReplacePortTags(ctx, port.ID, append(withoutOwner(port.Tags), owned...))
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err != nil {
		p.unsure[port.ID] = time.Now()
		ps.wake()
		return port, err
	}
	port.Tags = got
	if c, ok := p.inUse[port.ID]; ok && c.owner == owner {
		p.inUse[port.ID] = consumer{owner: owner, port: port}
	}
	return port, nil
}

// withoutOwner returns tags without a pod's or a claim's tags.
func withoutOwner(tags []string) []string {
	return slices.DeleteFunc(slices.Clone(tags), func(t string) bool {
		return strings.HasPrefix(t, tagPrefixPod) || strings.HasPrefix(t, tagPrefixIfName) || strings.HasPrefix(t, tagPrefixClaim)
	})
}

// recycle gives pooled port p, released by its pod (which the daemon has
// unplugged) or its claim, back to its pool when the pool wants it: its
// owner's tags are removed (one call) and its wiring stays (a nested-dpdk
// port stays attached). ok is false when the pool does
// not want it (full, gone, not rebuilt yet): the caller deletes it.
func (ps *pools) recycle(ctx context.Context, p openstack.Port) (ok bool, err error) {
	key, isPool := keyOfPort(p)
	if !isPool {
		return false, nil
	}
	ps.mu.Lock()
	pl := ps.byKey[key]
	want := ps.loaded && pl != nil && pl.size.on() && pl.idle() < pl.size.Max
	ps.mu.Unlock()
	if !want {
		return false, nil
	}
	tags, err := ps.r.cloud.ReplacePortTags(ctx, p.ID, withoutOwner(p.Tags))
	if err != nil {
		return false, fmt.Errorf("give port %s back to the pool of node %s: %w", p.ID, key.node, err)
	}
	p.Tags = tags
	ps.mu.Lock()
	pl.forget(p.ID)
	// Its wiring is checked again (no call when the cache knows it) before
	// it is handed out.
	pl.unwired[p.ID] = p
	ps.mu.Unlock()
	ps.wake()
	return true, nil
}

// released tells the pools that port p was deleted.
func (ps *pools) released(p openstack.Port) {
	key, isPool := keyOfPort(p)
	if !isPool {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if pl := ps.byKey[key]; pl != nil {
		pl.forget(p.ID)
		pl.deleted[p.ID] = true
	}
}

// rebuild reads every pool port of the cluster from Neutron: one with a
// pod tag is that pod's, one with a claim tag that claim's; one without
// is idle, its wiring checked by the next fill before it is handed out.
func (ps *pools) rebuild(ctx context.Context) error {
	ports, err := ps.r.cloud.ListPorts(ctx, openstack.PortFilter{Tags: ps.r.cluster().tags(), ProjectID: ps.r.cloud.ProjectID()})
	if err != nil {
		return fmt.Errorf("list this cluster's ports to rebuild the pools: %w", err)
	}
	byKey := map[poolKey]*pool{}
	for _, p := range ports {
		key, ok := keyOfPort(p)
		if !ok {
			continue
		}
		pl := byKey[key]
		if pl == nil {
			// A nested-dpdk pool's size per node is read by its first fill.
			pl = newPool(ps.r.opts.Pools.size(key.driver))
			byKey[key] = pl
		}
		if owner := ownerOf(p.Tags); owner != "" {
			pl.inUse[p.ID] = consumer{owner: owner, port: p}
		} else {
			pl.unwired[p.ID] = p
		}
	}
	ps.mu.Lock()
	ps.byKey, ps.loaded = byKey, true
	ps.claimSweep = ps.r.opts.Pools.NestedDPDK.on()
	ps.mu.Unlock()
	ps.knowSubnets(ctx, byKey)
	return nil
}

// knowSubnets reads the subnet and network of each rebuilt pool into the
// controller's cache. A take's status describes its port from them; a
// refill reads them before it creates (create), but a rebuilt pool that
// needs no refill would leave them to its first take, two more calls on a
// pod's path. A failure here is only logged: the take reads them again.
func (ps *pools) knowSubnets(ctx context.Context, byKey map[poolKey]*pool) {
	seen := map[string]bool{}
	for key := range byKey {
		if seen[key.subnetID] {
			continue
		}
		seen[key.subnetID] = true
		s, err := ps.r.nets.subnet(ctx, key.subnetID)
		if err == nil {
			_, err = ps.r.nets.network(ctx, s.NetworkID)
		}
		if err != nil {
			log.FromContext(ctx).Info("subnet of a rebuilt pool not read; its first take will", "subnet", key.subnetID, "reason", err.Error())
		}
	}
}

// byNode returns every pool as recorded in KuryrNodes, by node, in a
// stable order.
func (ps *pools) byNode() map[string][]v1alpha1.NodePool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := map[string][]v1alpha1.NodePool{}
	for k, p := range ps.byKey {
		np := v1alpha1.NodePool{Driver: k.driver, SubnetID: k.subnetID, Ready: len(p.ready),
			Warming: len(p.warming) + len(p.unwired), InUse: len(p.inUse), Target: p.size.Min, Max: p.size.Max, LastError: p.lastErr}
		if k.groups != "" {
			np.SecurityGroups = strings.Split(k.groups, ",")
		}
		out[k.node] = append(out[k.node], np)
	}
	for _, l := range out {
		slices.SortFunc(l, func(a, b v1alpha1.NodePool) int {
			return strings.Compare(string(a.Driver)+"/"+a.SubnetID+"/"+strings.Join(a.SecurityGroups, ","),
				string(b.Driver)+"/"+b.SubnetID+"/"+strings.Join(b.SecurityGroups, ","))
		})
	}
	return out
}

// nodeObject returns node name as a Kubernetes object (nil when gone).
func (ps *pools) nodeObject(ctx context.Context, name string) (*corev1.Node, error) {
	var n corev1.Node
	if err := ps.r.client.Get(ctx, types.NamespacedName{Name: name}, &n); err != nil {
		return nil, err
	}
	return &n, nil
}
