package controller

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// attachedPorts records the nested-dpdk ports the controller attached to
// node VMs for one pod each (not a pool's: the pools record theirs), so
// that the node's KuryrNode lists them in status.dpdkDevices (Unpooled,
// InUse, the pod as owner). The node's daemon binds a device for a pod
// only when its KuryrNode lists it so, and the KuryrNode is written only
// by the controller: this record is what the daemon trusts.
//
// A port is recorded when Nova is asked to attach it (dpdkDriver.wire) and
// forgotten once it is detached (unwire). After a restart the record is
// rebuilt from Neutron by the garbage collector's listing of the cluster's
// ports (sync, at its start and every round); until the first sync, the
// entries a KuryrNode already lists are kept (carry), less the ports
// forgotten since.
type attachedPorts struct {
	mu     sync.Mutex
	byPort map[string]attachedPort
	// loaded: a sync has read the cluster's ports from Neutron.
	loaded bool
	// forgotten are the ports detached and when: a KuryrNode's entry for
	// one is not carried, and a listing that began before is not
	// believed about it.
	forgotten map[string]time.Time
}

// attachedPort is one recorded port: the server it is attached to, its
// KuryrNode entry, and when it was recorded (a sync drops only what it
// should have listed).
type attachedPort struct {
	serverID string
	dev      v1alpha1.DPDKDevice
	since    time.Time
}

func newAttachedPorts() *attachedPorts {
	return &attachedPorts{byPort: map[string]attachedPort{}, forgotten: map[string]time.Time{}}
}

// unpooledOwner returns the pod that port p, a nested-dpdk port, was made
// for alone ("pod/<uid>"), or "" for a pool's port (the pools record
// those) or a port of no pod.
func unpooledOwner(p openstack.Port) string {
	if tagValue(p.Tags, tagPrefixPool) != "" {
		return ""
	}
	if uid := tagValue(p.Tags, tagPrefixPod); uid != "" {
		return ownerPod + uid
	}
	return ""
}

// unpooledEntry is port p's status.dpdkDevices entry for owner.
func unpooledEntry(p openstack.Port, owner string) v1alpha1.DPDKDevice {
	d := v1alpha1.DPDKDevice{PortID: p.ID, MAC: p.MACAddress, NetworkID: p.NetworkID, State: v1alpha1.DPDKDeviceInUse,
		Owner: owner, Unpooled: true}
	if len(p.FixedIPs) > 0 {
		d.SubnetID = p.FixedIPs[0].SubnetID
	}
	if len(p.SecurityGroups) > 0 {
		d.SecurityGroups = slices.Clone(p.SecurityGroups)
		slices.Sort(d.SecurityGroups)
	}
	return d
}

// put records port p, attached (or being attached) to server serverID for
// the pod its tags name, when it is such a port. A nil *attachedPorts
// records nothing.
func (a *attachedPorts) put(serverID string, p openstack.Port) {
	owner := unpooledOwner(p)
	if a == nil || owner == "" || serverID == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.byPort[p.ID]; ok && cur.serverID == serverID && cur.dev.Owner == owner {
		return
	}
	a.byPort[p.ID] = attachedPort{serverID: serverID, dev: unpooledEntry(p, owner), since: time.Now()}
	delete(a.forgotten, p.ID)
}

// forget drops port portID (detached, or gone), and remembers when.
func (a *attachedPorts) forget(portID string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.byPort, portID)
	a.forgotten[portID] = time.Now()
}

// sync makes the record what the cluster's ports, listed from Neutron
// starting at listed, show: every nested-dpdk port of one pod attached to
// a server is recorded, unless it was detached after the listing began; a
// recorded port the listing does not hold is dropped unless it was
// recorded after the listing began (an attach the listing could not see).
func (a *attachedPorts) sync(ports []openstack.Port, listed time.Time) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[string]bool{}
	for _, p := range ports {
		seen[p.ID] = true
		d, err := portDriverOf(p)
		owner := unpooledOwner(p)
		if err != nil || d != v1alpha1.DriverNestedDPDK || owner == "" || p.DeviceID == "" {
			continue
		}
		if t, ok := a.forgotten[p.ID]; ok && !t.Before(listed) {
			continue
		}
		if cur, ok := a.byPort[p.ID]; ok && cur.serverID == p.DeviceID && cur.dev.Owner == owner {
			continue
		}
		a.byPort[p.ID] = attachedPort{serverID: p.DeviceID, dev: unpooledEntry(p, owner), since: listed}
	}
	for id, ap := range a.byPort {
		if !seen[id] && ap.since.Before(listed) {
			delete(a.byPort, id)
		}
	}
	for id, t := range a.forgotten {
		if t.Before(listed) {
			delete(a.forgotten, id)
		}
	}
	a.loaded = true
}

// onServer returns the entries of the ports recorded on server serverID's
// VM, sorted by port ID, for its KuryrNode whose status lists prev now.
// Before the first sync, prev's Unpooled entries (written by an earlier
// run of the controller) are kept too, less the ports forgotten since.
func (a *attachedPorts) onServer(serverID string, prev []v1alpha1.DPDKDevice) []v1alpha1.DPDKDevice {
	if a == nil || serverID == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []v1alpha1.DPDKDevice
	for _, ap := range a.byPort {
		if ap.serverID == serverID {
			out = append(out, ap.dev)
		}
	}
	if !a.loaded {
		for _, d := range prev {
			_, recorded := a.byPort[d.PortID]
			if _, gone := a.forgotten[d.PortID]; d.Unpooled && !recorded && !gone {
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, func(x, y v1alpha1.DPDKDevice) int { return strings.Compare(x.PortID, y.PortID) })
	return out
}
