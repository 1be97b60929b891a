package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// novaAttachments is what nested-dpdk needs: Nova's hot-attach and detach
// of a port to a server, and a read of the port to see the detach done.
type novaAttachments interface {
	AttachInterface(ctx context.Context, serverID, portID string) (openstack.Interface, error)
	DetachInterface(ctx context.Context, serverID, portID string) error
	GetPort(ctx context.Context, id string) (openstack.Port, error)
}

// errDetachPending says Nova has been asked to detach a port and has not
// finished: the port must not be deleted yet. Try again shortly.
var errDetachPending = errors.New("detach still in progress")

// dpdkDriver is nested-dpdk: Nova hot-attaches the port to the node VM (a
// new virtio-net PCI device there), which the daemon binds to a DPDK driver.
type dpdkDriver struct {
	cloud novaAttachments
	// slots keeps attaches within the VM's hot-plug slots.
	slots *hotplugSlots
	// attached records a pod's own ports, attached and being attached,
	// for the node's KuryrNode.
	attached           *attachedPorts
	attaches, detaches prometheus.Counter
}

var _ portDriver = (*dpdkDriver)(nil)

// prepare adds nothing: Nova sets device_owner and device_id when it
// attaches the port.
func (d *dpdkDriver) prepare(nodeInfo, *openstack.PortSpec) {}

func (d *dpdkDriver) wire(ctx context.Context, node nodeInfo, ifName string, p openstack.Port) (wiring, error) {
	w := wiring{port: p}
	switch {
	case node.ServerID == "":
		return w, terminal(fmt.Errorf("node %s has no Nova server to attach port %s to", node.Name, p.ID))
	case p.DeviceID == node.ServerID:
		d.attached.put(node.ServerID, p)
		return w, nil
	case p.DeviceID != "":
		return w, terminal(fmt.Errorf("port %s of interface %s is in use by device %s, not server %s", p.ID, ifName, p.DeviceID, node.ServerID))
	}
	if err := d.slots.reserve(ctx, node, p.ID); err != nil {
		return w, err
	}
	// Recorded before Nova is asked: the node's KuryrNode may list the
	// port before its device appears, never after.
	d.attached.put(node.ServerID, p)
	iface, err := d.cloud.AttachInterface(ctx, node.ServerID, p.ID)
	if err != nil {
		// Attached after all (a lost answer)? The count is read again
		// from Neutron before the node is called full, and the next
		// wire finds the port attached and records it again.
		d.slots.free(node.ServerID, p.ID)
		d.attached.forget(p.ID)
		return w, fmt.Errorf("attach port %s to server %s: %w", p.ID, node.ServerID, err)
	}
	d.slots.attached(node.ServerID, p.ID)
	d.attaches.Inc()
	if iface.PortState == openstack.PortStatusActive {
		// Nova's answer says the attachment is up: the port is the
		// server's and ACTIVE, without reading it again.
		w.port.DeviceID, w.port.Status = node.ServerID, openstack.PortStatusActive
	}
	return w, nil
}

// active: the attachment is up when the port is ACTIVE and the node's.
func (d *dpdkDriver) active(node nodeInfo, p openstack.Port) bool {
	return p.Status == openstack.PortStatusActive && p.DeviceID == node.ServerID
}

// unwire asks Nova to detach p and returns once the port's device_id is
// clear; until then it returns errDetachPending.
func (d *dpdkDriver) unwire(ctx context.Context, p openstack.Port) error {
	if p.DeviceID == "" {
		// Never attached (or already detached).
		d.attached.forget(p.ID)
		return nil
	}
	err := d.cloud.DetachInterface(ctx, p.DeviceID, p.ID)
	switch {
	case errors.Is(err, openstack.ErrConflict):
		// Nova is busy with this port (a detach already under way).
		return fmt.Errorf("detach port %s from server %s: %w (%w)", p.ID, p.DeviceID, errDetachPending, err)
	case err != nil && !errors.Is(err, openstack.ErrNotFound):
		return fmt.Errorf("detach port %s from server %s: %w", p.ID, p.DeviceID, err)
	}
	d.detaches.Inc()
	fresh, err := d.cloud.GetPort(ctx, p.ID)
	switch {
	case errors.Is(err, openstack.ErrNotFound):
		d.slots.free(p.DeviceID, p.ID)
		d.attached.forget(p.ID)
		return fmt.Errorf("port %s after detach from server %s: %w", p.ID, p.DeviceID, errPortGone)
	case err != nil:
		return fmt.Errorf("read port %s after detach: %w", p.ID, err)
	case fresh.DeviceID != "":
		return fmt.Errorf("port %s still attached to server %s: %w", p.ID, fresh.DeviceID, errDetachPending)
	}
	d.slots.free(p.DeviceID, p.ID)
	d.attached.forget(p.ID)
	return nil
}

var _ poolWirer = (*dpdkDriver)(nil)

// wireBatch attaches each port not attached yet to node's server, each
// within the VM's hot-plug slots. Nova has no bulk attach: one request per
// port, all at once (the write bound, maxCloudWrites, holds them). A port
// whose attach landed though its answer was lost (Nova answers 409, the
// port is in use) is read back: attached to this server, it is wired. The
// returned map holds the ports wired, also when the error reports others
// that are not.
func (d *dpdkDriver) wireBatch(ctx context.Context, node nodeInfo, what string, ports []openstack.Port) (map[string]int, error) {
	var (
		mu   sync.Mutex
		done = map[string]int{}
		errs []error
		wg   sync.WaitGroup
	)
	for _, p := range ports {
		wg.Go(func() {
			_, err := d.wire(ctx, node, what, p)
			if errors.Is(err, openstack.ErrConflict) {
				err = d.attachedAfterAll(ctx, node, p.ID, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			done[p.ID] = 0
		})
	}
	wg.Wait()
	return done, errors.Join(errs...)
}

// attachedAfterAll reads port id, whose attach Nova refused as a conflict:
// attached to node's server already (an earlier attach whose answer was
// lost), it is wired, and its slot counted; otherwise attachErr stands.
func (d *dpdkDriver) attachedAfterAll(ctx context.Context, node nodeInfo, id string, attachErr error) error {
	p, err := d.cloud.GetPort(ctx, id)
	if err != nil || p.DeviceID != node.ServerID {
		return attachErr
	}
	if err := d.slots.reserve(ctx, node, id); err != nil {
		return err
	}
	d.slots.attached(node.ServerID, id)
	return nil
}
