package binding

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
)

// What an attachment holds on the node, and the one check that keeps an
// attachment of another pod off it. The controller hands a port on (back to
// its node's pool, or its VLAN tag to another port) as soon as its pod is
// deleted and the KuryrPod shows no interface Plugged, which is also the case
// while the pod's ADD is still plugging it; only the node knows that.

// Checkpoint Extra keys of the facts a hold is known by.
const (
	// extraVLANID is the 802.1Q tag of a nested-vlan attachment.
	extraVLANID = "vlanID"
	// extraClaimUID is the ResourceClaim of a claimed attachment.
	extraClaimUID = "claimUID"
)

// ErrHeld means another pod's attachment on this node holds what a request
// asks for (see HeldError).
var ErrHeld = errors.New("held by another pod's attachment on this node")

// HeldError names the attachment that holds what a request asks for.
type HeldError struct {
	// Want is the attachment refused.
	Want checkpoint.Key
	// Holder is the attachment that holds it, made for pod HolderPodUID
	// ("" in a checkpoint older than schema version 3).
	Holder       checkpoint.Key
	HolderPodUID string
	// InFlight: the holder's ADD is under way (it has not returned);
	// otherwise its checkpoint holds it.
	InFlight bool
	// What is what both want: "port …", "MAC …" or "VLAN …".
	What string
}

func (e *HeldError) Error() string {
	pod := "a pod its checkpoint does not name"
	if e.HolderPodUID != "" {
		pod = "pod " + e.HolderPodUID
	}
	how := "whose checkpoint holds it until its DEL"
	if e.InFlight {
		how = "whose ADD is under way"
	}
	return fmt.Sprintf("%s is held on this node by container %s interface %s of %s, %s",
		e.What, e.Holder.ContainerID, e.Holder.IfName, pod, how)
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// holding is what one attachment holds on the node: its Neutron port, and
// the MAC the VM sees it by (a MACVLAN on the NIC, a device found by its
// MAC), or the VLAN tag on the NIC (nested-vlan: a VLAN link's MAC is no
// resource of the VM, its tag is; the controller gives a freed tag to the
// next port). A DPDK device is found by its MAC, so its MAC stands for it.
type holding struct {
	key      checkpoint.Key
	podUID   string
	claimUID string
	portID   string
	mac      string // lower case
	vlanID   int
}

// newHolding is what an attachment of kind (a checkpoint kind) with these
// facts holds.
func newHolding(kind string, key checkpoint.Key, podUID, claimUID, portID, mac string, vlanID int) holding {
	h := holding{key: key, podUID: podUID, claimUID: claimUID, portID: portID}
	if kind == checkpoint.KindVLAN {
		h.vlanID = vlanID
	} else {
		h.mac = strings.ToLower(mac)
	}
	return h
}

// recordHolding is what the attachment of a checkpoint holds. A VLAN
// record written before the tag was recorded holds its port only.
func recordHolding(r checkpoint.Record) holding {
	vid, _ := strconv.Atoi(r.Extra[extraVLANID])
	return newHolding(r.Kind, r.Key(), r.PodUID, r.Extra[extraClaimUID], r.PortID, r.MAC, vid)
}

// shared says what a and b both hold ("" for nothing they must not
// share). The same attachment (a retried ADD) and two attachments of the
// same pod (a newer sandbox of it, whose ADD may come before the old one's
// DEL) share nothing, nor do two pods of one ResourceClaim (a claim shared
// by pods gives each of them its device; see docs/dra.md).
func shared(a, b holding) string {
	switch {
	case a.key == b.key, a.podUID != "" && a.podUID == b.podUID, a.claimUID != "" && a.claimUID == b.claimUID:
		return ""
	case a.portID != "" && a.portID == b.portID:
		return "port " + a.portID
	case a.mac != "" && a.mac == b.mac:
		return "MAC " + a.mac
	case a.vlanID != 0 && a.vlanID == b.vlanID:
		return fmt.Sprintf("VLAN %d on the VM's NIC", a.vlanID)
	}
	return ""
}

// Plan is one attachment an ADD is about to make: the driver that makes it
// and its request.
type Plan struct {
	Driver  Driver
	Request Request
}

// holds are the attachments whose ADD is under way, by what they hold (a
// daemon restart ends them: what they touched has its checkpoint).
type holds struct {
	mu       sync.Mutex
	inFlight map[*holding]struct{}
}

// take holds want unless an ADD under way holds any of it.
func (hs *holds) take(want []*holding) error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, w := range want {
		for h := range hs.inFlight {
			if what := shared(*w, *h); what != "" {
				return &HeldError{Want: w.key, Holder: h.key, HolderPodUID: h.podUID, InFlight: true, What: what}
			}
		}
	}
	if hs.inFlight == nil {
		hs.inFlight = map[*holding]struct{}{}
	}
	for _, w := range want {
		hs.inFlight[w] = struct{}{}
	}
	return nil
}

func (hs *holds) drop(want []*holding) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, w := range want {
		delete(hs.inFlight, w)
	}
}

// Hold is the check before an ADD plugs anything: when another pod's
// attachment on this node holds what one of plans asks for (see holding),
// whether it is being plugged (an ADD under way, between its Hold and its
// release) or plugged (its checkpoint), the answer is a *HeldError and
// nothing is held. Otherwise plans are held, for every other Hold to see,
// until release, which the caller calls once its Attach calls have
// returned: by then each attachment they made has its checkpoint (written
// before anything is touched), which holds it from there on until it is
// undone (DEL, GC, the start-up reconcile, a DPDK Attach's rollback).
func (s *Set) Hold(plans ...Plan) (release func(), err error) {
	want := make([]*holding, len(plans))
	for i, p := range plans {
		r := p.Request
		h := newHolding(s.kindOf(p.Driver), checkpoint.Key{ContainerID: r.ContainerID, IfName: r.IfName}, r.PodUID, r.ClaimUID,
			r.PortID, macString(r), r.VLANID)
		want[i] = &h
	}
	if err := s.holds.take(want); err != nil {
		return nil, err
	}
	var once sync.Once
	release = func() { once.Do(func() { s.holds.drop(want) }) }
	// Listed once want is held, outside the lock (one ADD's listing does
	// not wait for another's): an ADD that was under way and has ended
	// since released its hold after writing its checkpoints, so the
	// listing has them; one still under way has met this hold in take.
	recs, err := s.store.List()
	if err != nil {
		release()
		return nil, fmt.Errorf("tell which attachments hold what: %w", err)
	}
	for _, w := range want {
		for _, r := range recs {
			if what := shared(*w, recordHolding(r)); what != "" {
				release()
				return nil, &HeldError{Want: w.key, Holder: r.Key(), HolderPodUID: r.PodUID, What: what}
			}
		}
	}
	return release, nil
}

// kindOf is the checkpoint kind of the records d writes.
func (s *Set) kindOf(d Driver) string {
	for k, x := range s.byKind {
		if x == d {
			return k
		}
	}
	return ""
}
