package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// nodeInfo is what the controller knows of a node VM in the cloud.
type nodeInfo struct {
	Name         string
	ServerID     string
	ParentPortID string
	ParentMAC    string
	ParentIPs    []string
	// TrunkID is empty when the VM's port is not a trunk parent.
	TrunkID string
	// HotplugSlots is how many ports Nova may hot-attach to the VM
	// besides its own (0: not counted). It comes from the Node object, not
	// the cloud: nodeOf sets it on every reconcile.
	HotplugSlots int
	// Pools sizes the node's pools of each driver: the options, or the
	// Node's pool-size annotations (pool_size.go). From the Node object
	// too, set with HotplugSlots.
	Pools PoolOptions
}

// errNodeNotReady says the node cannot be resolved yet (no providerID and no
// InternalIP): worth trying again later, not a storm.
var errNodeNotReady = errors.New("node not ready for networking")

// nodes resolves Kubernetes nodes to their Nova server, parent port and trunk,
// and hands out VLAN IDs per trunk. Both are cached: Neutron is the truth and
// every cache is rebuilt from it after a restart or a conflict.
type nodes struct {
	cloud         nodeCloud
	workerSubnets []string

	mu     sync.Mutex
	byName map[string]nodeInfo
	trunks map[string]*trunkVLANs
	// epoch counts the forgets: a lookup is cached only if no node was
	// forgotten since its Node was read (resolve), so that a Node read
	// just before its deletion is not cached again after its forget.
	epoch uint64

	// adds merges the add_subports of ports waiting for the same trunk.
	adds *batcher[string, []string, map[string]int]
}

// nodeCloud is what resolving nodes and handing out VLAN IDs need: the
// server's ports, and the trunk's subports.
type nodeCloud interface {
	ListPorts(ctx context.Context, f openstack.PortFilter) ([]openstack.Port, error)
	ListSubports(ctx context.Context, id string) ([]openstack.Subport, error)
	AddSubports(ctx context.Context, id string, subs []openstack.Subport) (openstack.Trunk, error)
	RemoveSubports(ctx context.Context, id string, portIDs []string) (openstack.Trunk, error)
}

func newNodes(c nodeCloud, workerSubnets []string) *nodes {
	ns := &nodes{cloud: c, workerSubnets: workerSubnets, byName: map[string]nodeInfo{}, trunks: map[string]*trunkVLANs{}}
	ns.adds = newBatcher(1, ns.addSubportsBatch)
	return ns
}

// serverIDFromProviderID accepts openstack:///<id> and openstack://<region>/<id>.
func serverIDFromProviderID(p string) string {
	rest, ok := strings.CutPrefix(p, "openstack://")
	if !ok {
		return ""
	}
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		rest = rest[i+1:]
	}
	return rest
}

func internalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// resolve returns node's cloud facts, from the cache when known; fresh says
// they were just looked up in the cloud. node must have been read after
// read was taken (ns.read()): what is looked up is cached only if no node
// was forgotten since, so a Node deleted (and forgotten: forget) after
// the caller read it and before its lookup ended is not cached again.
func (ns *nodes) resolve(ctx context.Context, node *corev1.Node, read uint64) (info nodeInfo, fresh bool, err error) {
	ns.mu.Lock()
	info, ok := ns.byName[node.Name]
	ns.mu.Unlock()
	if ok {
		return info, false, nil
	}
	info, err = ns.lookup(ctx, node)
	if err != nil {
		return nodeInfo{}, false, err
	}
	ns.mu.Lock()
	if ns.epoch == read {
		ns.byName[node.Name] = info
	}
	ns.mu.Unlock()
	return info, true, nil
}

// read returns the count of forgets so far, to take before reading a Node
// that resolve is then given.
func (ns *nodes) read() uint64 {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.epoch
}

// cached returns node name's cloud facts if they are known (no lookup).
func (ns *nodes) cached(name string) (nodeInfo, bool) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	info, ok := ns.byName[name]
	return info, ok
}

// known returns every node resolved so far.
func (ns *nodes) known() []nodeInfo {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	out := make([]nodeInfo, 0, len(ns.byName))
	for _, n := range ns.byName {
		out = append(out, n)
	}
	return out
}

// vlanIDs returns the VLAN IDs known in use on trunkID, sorted.
func (ns *nodes) vlanIDs(trunkID string) []int {
	t, ok := ns.knownTrunk(trunkID)
	if !ok {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]int, 0, len(t.used))
	for v := range t.used {
		ids = append(ids, v)
	}
	slices.Sort(ids)
	return ids
}

// forget drops a node from the cache, with the VLAN IDs of its trunk: its
// Node was deleted, or the cloud said its trunk or server is gone. A
// lookup under way is not cached (resolve).
func (ns *nodes) forget(name string) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if info, ok := ns.byName[name]; ok && info.TrunkID != "" {
		delete(ns.trunks, info.TrunkID)
	}
	delete(ns.byName, name)
	ns.epoch++
}

func (ns *nodes) lookup(ctx context.Context, node *corev1.Node) (nodeInfo, error) {
	ip := internalIP(node)
	var parent openstack.Port
	if server := serverIDFromProviderID(node.Spec.ProviderID); server != "" {
		ports, err := ns.cloud.ListPorts(ctx, openstack.PortFilter{DeviceID: server})
		if err != nil {
			return nodeInfo{}, fmt.Errorf("list ports of server %s (node %s): %w", server, node.Name, err)
		}
		p, ok := ns.pickParent(ports, ip)
		if !ok {
			return nodeInfo{}, fmt.Errorf("node %s: server %s has no port in the worker subnets %v matching InternalIP %q: %w",
				node.Name, server, ns.workerSubnets, ip, errNodeNotReady)
		}
		parent = p
	} else {
		if ip == "" {
			return nodeInfo{}, fmt.Errorf("node %s has neither providerID openstack:///<server-id> nor an InternalIP: %w", node.Name, errNodeNotReady)
		}
		p, err := ns.portByIP(ctx, ip)
		if err != nil {
			return nodeInfo{}, fmt.Errorf("node %s: %w", node.Name, err)
		}
		parent = p
	}
	info := nodeInfo{Name: node.Name, ServerID: parent.DeviceID, ParentPortID: parent.ID, ParentMAC: parent.MACAddress}
	for _, f := range parent.FixedIPs {
		info.ParentIPs = append(info.ParentIPs, f.IPAddress)
	}
	if parent.TrunkDetails != nil {
		info.TrunkID = parent.TrunkDetails.TrunkID
	}
	return info, nil
}

// pickParent chooses the VM's own port among a server's ports: the trunk
// parent, else the one holding the node's InternalIP, else the only one in
// the worker subnets.
func (ns *nodes) pickParent(ports []openstack.Port, ip string) (openstack.Port, bool) {
	for _, p := range ports {
		if p.TrunkDetails != nil && p.TrunkDetails.TrunkID != "" {
			return p, true
		}
	}
	for _, p := range ports {
		for _, f := range p.FixedIPs {
			if ip != "" && f.IPAddress == ip {
				return p, true
			}
		}
	}
	var inWorker []openstack.Port
	for _, p := range ports {
		for _, f := range p.FixedIPs {
			if slices.Contains(ns.workerSubnets, f.SubnetID) {
				inWorker = append(inWorker, p)
				break
			}
		}
	}
	if len(inWorker) == 1 {
		return inWorker[0], true
	}
	if len(ns.workerSubnets) == 0 && len(ports) == 1 {
		return ports[0], true
	}
	return openstack.Port{}, false
}

func (ns *nodes) portByIP(ctx context.Context, ip string) (openstack.Port, error) {
	subnets := ns.workerSubnets
	if len(subnets) == 0 {
		subnets = []string{""}
	}
	for _, s := range subnets {
		ports, err := ns.cloud.ListPorts(ctx, openstack.PortFilter{FixedIP: ip, SubnetID: s})
		if err != nil {
			return openstack.Port{}, fmt.Errorf("find the port with IP %s: %w", ip, err)
		}
		for _, p := range ports {
			if p.DeviceID != "" {
				return p, nil
			}
		}
	}
	return openstack.Port{}, fmt.Errorf("no VM port holds InternalIP %s in worker subnets %v: %w", ip, ns.workerSubnets, errNodeNotReady)
}

// trunkVLANs is the set of VLAN IDs in use on one trunk.
type trunkVLANs struct {
	mu     sync.Mutex
	loaded bool
	byPort map[string]int
	used   map[int]bool
}

func (ns *nodes) trunk(id string) *trunkVLANs {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	t, ok := ns.trunks[id]
	if !ok {
		t = &trunkVLANs{}
		ns.trunks[id] = t
	}
	return t
}

// knownTrunk returns trunk id's VLAN IDs if they are cached, without
// making an entry: reading or releasing a forgotten node's trunk does not
// bring it back.
func (ns *nodes) knownTrunk(id string) (*trunkVLANs, bool) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	t, ok := ns.trunks[id]
	return t, ok
}

// load reads the trunk's subports from Neutron. t.mu must be held.
func (ns *nodes) load(ctx context.Context, trunkID string, t *trunkVLANs) error {
	subs, err := ns.cloud.ListSubports(ctx, trunkID)
	if err != nil {
		return fmt.Errorf("list subports of trunk %s: %w", trunkID, err)
	}
	t.byPort, t.used = map[string]int{}, map[int]bool{}
	for _, s := range subs {
		t.byPort[s.PortID] = s.SegmentationID
		t.used[s.SegmentationID] = true
	}
	t.loaded = true
	return nil
}

const maxVLANAttempts = 6

// addSubports makes every port of portIDs a subport of trunkID, each with
// a VLAN ID free on that trunk, and returns the IDs by port. Ports that
// already are subports keep their IDs. Callers waiting for the same trunk
// at the same time (pods of one node, a pool's batch) share one
// add_subports request, whose VLAN IDs are chosen together.
func (ns *nodes) addSubports(ctx context.Context, trunkID string, portIDs []string) (map[string]int, error) {
	return ns.adds.do(ctx, trunkID, portIDs)
}

// addSubportsBatch is one add_subports for the ports of several callers;
// if Neutron refuses the batch (it takes all or none), each caller's ports
// are tried on their own.
func (ns *nodes) addSubportsBatch(ctx context.Context, trunkID string, reqs [][]string) ([]map[string]int, []error) {
	var all []string
	for _, ids := range reqs {
		for _, id := range ids {
			if !slices.Contains(all, id) {
				all = append(all, id)
			}
		}
	}
	vids, err := ns.addSubportsNow(ctx, trunkID, all)
	if err != nil {
		return splitOnRefusal(ctx, reqs, err, func(ctx context.Context, ids []string) (map[string]int, error) {
			return ns.addSubportsNow(ctx, trunkID, ids)
		})
	}
	outs := make([]map[string]int, len(reqs))
	for i, ids := range reqs {
		outs[i] = make(map[string]int, len(ids))
		for _, id := range ids {
			outs[i][id] = vids[id]
		}
	}
	return outs, make([]error, len(reqs))
}

// addSubportsNow makes every port of portIDs a subport of trunkID in one
// request, each with a VLAN ID free on that trunk, and returns the IDs by
// port. Ports that already are subports keep their IDs and are not sent.
// On 409 it reloads the trunk and picks again: for a VLAN ID taken behind
// our back (DuplicateSubPort) up to maxVLANAttempts times; for any other
// conflict once (a port added by a request whose answer was lost is then
// known and not sent again; a port of another trunk stays refused).
func (ns *nodes) addSubportsNow(ctx context.Context, trunkID string, portIDs []string) (map[string]int, error) {
	t := ns.trunk(trunkID)
	var lastErr error
	otherConflicts := 0
	for attempt := 0; attempt < maxVLANAttempts; attempt++ {
		t.mu.Lock()
		if !t.loaded || attempt > 0 {
			if err := ns.load(ctx, trunkID, t); err != nil {
				t.mu.Unlock()
				return nil, err
			}
		}
		out := map[string]int{}
		var subs []openstack.Subport
		next := 1
		for _, id := range portIDs {
			if vid, ok := t.byPort[id]; ok {
				out[id] = vid
				continue
			}
			for next <= 4094 && t.used[next] {
				next++
			}
			if next > 4094 {
				t.mu.Unlock()
				return nil, fmt.Errorf("trunk %s has no free VLAN ID for port %s", trunkID, id)
			}
			// Reserve it, and call Neutron without the lock (a removal
			// may go on meanwhile).
			t.used[next], t.byPort[id], out[id] = true, next, next
			subs = append(subs, openstack.Subport{PortID: id, SegmentationType: "vlan", SegmentationID: next})
		}
		t.mu.Unlock()
		if len(subs) == 0 {
			return out, nil
		}
		_, err := ns.cloud.AddSubports(ctx, trunkID, subs)
		if err == nil {
			return out, nil
		}
		t.mu.Lock()
		for _, s := range subs {
			delete(t.used, s.SegmentationID)
			delete(t.byPort, s.PortID)
		}
		// A lost answer may have added them after all: the next call
		// reads the trunk again.
		t.loaded = false
		t.mu.Unlock()
		var oe *openstack.Error
		if !errors.As(err, &oe) || oe.Type != "DuplicateSubPort" {
			otherConflicts++
		}
		if !errors.Is(err, openstack.ErrConflict) || otherConflicts > 1 {
			return nil, fmt.Errorf("add %d ports to trunk %s (first %s as VLAN %d): %w", len(subs), trunkID, subs[0].PortID, subs[0].SegmentationID, err)
		}
		lastErr = err
	}
	return nil, fmt.Errorf("add %d ports to trunk %s: VLAN IDs still taken after %d attempts: %w", len(portIDs), trunkID, maxVLANAttempts, lastErr)
}

// removeSubport takes portID off trunkID; a subport already gone is fine.
func (ns *nodes) removeSubport(ctx context.Context, trunkID, portID string) error {
	_, err := ns.cloud.RemoveSubports(ctx, trunkID, []string{portID})
	if err != nil && !errors.Is(err, openstack.ErrNotFound) {
		return fmt.Errorf("remove port %s from trunk %s: %w", portID, trunkID, err)
	}
	t, ok := ns.knownTrunk(trunkID)
	if !ok {
		return nil
	}
	t.mu.Lock()
	if vid, ok := t.byPort[portID]; ok {
		delete(t.used, vid)
		delete(t.byPort, portID)
	}
	t.mu.Unlock()
	return nil
}
