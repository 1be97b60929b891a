package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// portLookup finds the existing port of each interface of one pod with as
// few calls as the state allows: by its recorded ID (one GET, which is also
// the poll for ACTIVE), else from one list of the pod's ports by tag (what
// makes creation idempotent after a crash or a lost answer), and not at all
// for a KuryrPod made by this very reconcile.
type portLookup struct {
	r    *PodReconciler
	uid  types.UID
	none bool
	byIf map[string]*openstack.Port
}

// A port named by the status is checked against its tags and project
// before anything uses it (checkOwner): the status is also written by the
// node's daemon. One that is not the interface's fails with errNotOwned.
func (l *portLookup) port(ctx context.Context, ifName string, cur *v1alpha1.InterfaceStatus) (*openstack.Port, error) {
	id, fromStatus := "", false
	if cur != nil {
		id, fromStatus = cur.PortID, cur.PortID != ""
	}
	if id == "" {
		if _, ok := l.r.created.pooled(l.uid, ifName); ok {
			// Taken from a pool moments ago, wired and ACTIVE: the
			// caller uses what the take returned, with no call.
			return nil, nil
		}
		// Made by this process moments ago, and the informer has not
		// brought the status that records it yet.
		id = l.r.created.get(l.uid, ifName)
	}
	if id != "" {
		p, err := l.r.cloud.GetPort(ctx, id)
		switch {
		case err == nil && fromStatus:
			if err := l.r.checkOwner(p, l.uid, ifName); err != nil {
				return nil, err
			}
			return &p, nil
		case err == nil:
			return &p, nil
		case !errors.Is(err, openstack.ErrNotFound):
			return nil, fmt.Errorf("read port %s of interface %s: %w", id, ifName, err)
		}
		// The recorded port is gone: look for another by tag, else make one.
	} else if l.none {
		return nil, nil
	}
	if l.byIf == nil {
		if err := l.list(ctx); err != nil {
			return nil, err
		}
	}
	return l.byIf[ifName], nil
}

// list reads the pod's ports once. Two ports for one interface (a create
// whose answer was lost, then repeated) are one too many: the extra is
// released at once rather than left until the pod goes.
func (l *portLookup) list(ctx context.Context) error {
	ports, err := l.r.podPorts(ctx, l.uid)
	if err != nil {
		return err
	}
	l.byIf = map[string]*openstack.Port{}
	for i := range ports {
		ifName := tagValue(ports[i].Tags, tagPrefixIfName)
		if _, dup := l.byIf[ifName]; !dup {
			l.byIf[ifName] = &ports[i]
			continue
		}
		log.FromContext(ctx).Info("releasing a duplicate port", "pod", l.uid, "ifName", ifName, "portID", ports[i].ID)
		if err := l.r.releasePort(ctx, ports[i]); err != nil {
			return fmt.Errorf("release duplicate port %s of interface %s: %w", ports[i].ID, ifName, err)
		}
	}
	return nil
}

// createdPorts remembers the ports this process created, per pod and
// interface, until a reconcile reads a status that shows the interface
// Active or Plugged (the status records the port then, and nothing reads
// the record again; in practice the reconcile after the daemon's Plugged
// write) or the pod is released: the informer cache may not show the
// status that records them when the pod is next reconciled. At a thousand pods every record
// kept until release was about a tenth of the controller's live heap.
type createdPorts struct {
	mu sync.Mutex
	m  map[types.UID]map[string]createdPort
}

// createdPort is a port made for an interface, or taken from a pool (then
// with its wiring, which needs no check), or a create for it that went
// unanswered (lostUntil: Neutron may still make that port until then).
type createdPort struct {
	w         wiring
	pooled    bool
	lostUntil time.Time
}

// put records port portID, created for the pod's interface.
func (c *createdPorts) put(uid types.UID, ifName, portID string) {
	c.record(uid, ifName, createdPort{w: wiring{port: openstack.Port{ID: portID}}})
}

// putPooled records w, a ready port the interface took from a pool.
func (c *createdPorts) putPooled(uid types.UID, ifName string, w wiring) {
	c.record(uid, ifName, createdPort{w: w, pooled: true})
}

// lost records that a create of the interface's port went unanswered:
// Neutron may still make that port, until about the time given.
func (c *createdPorts) lost(uid types.UID, ifName string, until time.Time) {
	c.record(uid, ifName, createdPort{lostUntil: until})
}

// lostUntil returns until when an unanswered create may still make the
// interface's port (zero: no such create is recorded).
func (c *createdPorts) lostUntil(uid types.UID, ifName string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[uid][ifName].lostUntil
}

func (c *createdPorts) record(uid types.UID, ifName string, cp createdPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[types.UID]map[string]createdPort{}
	}
	if c.m[uid] == nil {
		c.m[uid] = map[string]createdPort{}
	}
	c.m[uid][ifName] = cp
}

func (c *createdPorts) get(uid types.UID, ifName string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[uid][ifName].w.port.ID
}

// pooled returns the wiring of a port the interface took from a pool.
func (c *createdPorts) pooled(uid types.UID, ifName string) (wiring, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := c.m[uid][ifName]
	return cp.w, cp.pooled
}

// settled forgets the record of the pod's interface ifName: its status
// shows the interface Active or Plugged, with its port.
func (c *createdPorts) settled(uid types.UID, ifName string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.m[uid]
	if m == nil {
		return
	}
	delete(m, ifName)
	if len(m) == 0 {
		delete(c.m, uid)
	}
}

func (c *createdPorts) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, uid)
}
