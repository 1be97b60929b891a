package controller

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

type fakeTrunks struct {
	vid       int
	err       error
	forgotten string
}

func (f *fakeTrunks) addSubports(_ context.Context, _ string, ids []string) (map[string]int, error) {
	if f.err != nil {
		return nil, f.err
	}
	out := map[string]int{}
	for i, id := range ids {
		out[id] = f.vid + i
	}
	return out, nil
}
func (f *fakeTrunks) removeSubport(context.Context, string, string) error { return nil }
func (f *fakeTrunks) forget(node string)                                  { f.forgotten = node }

// TestVLANDriverWire: a node without a trunk is terminal; a trunk that
// vanished makes the node be looked up again; otherwise the port gets its
// VLAN ID and is ready once Neutron says ACTIVE.
func TestVLANDriverWire(t *testing.T) {
	t.Parallel()
	node := nodeInfo{Name: "n1", ParentPortID: "vm", TrunkID: "t1"}
	ctx := context.Background()

	d := &vlanDriver{trunks: &fakeTrunks{vid: 7}}
	if _, err := d.wire(ctx, nodeInfo{Name: "n1", ParentPortID: "vm"}, "eth0", openstack.Port{ID: "p"}); !isTerminal(err) {
		t.Errorf("node without trunk: %v, want a terminal error", err)
	}
	w, err := d.wire(ctx, node, "eth0", openstack.Port{ID: "p", Status: openstack.PortStatusDown})
	if err != nil || w.vlanID != 7 || d.active(node, w.port) {
		t.Errorf("wire = VLAN %d, active %v, %v; want VLAN 7, not active while DOWN", w.vlanID, d.active(node, w.port), err)
	}
	if !d.active(node, openstack.Port{Status: openstack.PortStatusActive}) {
		t.Error("an ACTIVE subport is not active")
	}

	gone := &fakeTrunks{err: fmt.Errorf("add subport: %w", openstack.ErrNotFound)}
	d = &vlanDriver{trunks: gone}
	if _, err := d.wire(ctx, node, "eth0", openstack.Port{ID: "p"}); err == nil || isTerminal(err) || gone.forgotten != "n1" {
		t.Errorf("vanished trunk: %v, node forgotten %q; want a retryable error and n1 forgotten", err, gone.forgotten)
	}
}

type fakeNova struct {
	attached openstack.Interface
	err      error
	calls    int
}

func (f *fakeNova) AttachInterface(context.Context, string, string) (openstack.Interface, error) {
	f.calls++
	return f.attached, f.err
}
func (f *fakeNova) DetachInterface(context.Context, string, string) error { return nil }
func (f *fakeNova) GetPort(_ context.Context, id string) (openstack.Port, error) {
	return openstack.Port{ID: id}, nil
}

// TestDPDKDriverWire: a port on another device or a node without server is
// terminal; a port already on the node's server is not attached again; an
// attachment Nova answers ACTIVE is ready at once, one it does not is ready
// when the port is ACTIVE and the server's.
func TestDPDKDriverWire(t *testing.T) {
	t.Parallel()
	node := nodeInfo{Name: "n1", ServerID: "srv"}
	ctx := context.Background()
	newDriver := func(nova *fakeNova) (*dpdkDriver, prometheus.Counter) {
		attaches := prometheus.NewCounter(prometheus.CounterOpts{Name: "a"})
		return &dpdkDriver{cloud: nova, attaches: attaches, detaches: prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})}, attaches
	}

	for name, c := range map[string]struct {
		node nodeInfo
		port openstack.Port
	}{
		"port on another server": {node, openstack.Port{ID: "p", DeviceID: "other"}},
		"node without server":    {nodeInfo{Name: "n1"}, openstack.Port{ID: "p"}},
	} {
		nova := &fakeNova{}
		d, _ := newDriver(nova)
		if _, err := d.wire(ctx, c.node, "dpdk0", c.port); !isTerminal(err) || nova.calls != 0 {
			t.Errorf("%s: %v after %d attaches, want a terminal error and none", name, err, nova.calls)
		}
	}

	nova := &fakeNova{}
	d, _ := newDriver(nova)
	w, err := d.wire(ctx, node, "dpdk0", openstack.Port{ID: "p", DeviceID: "srv", Status: openstack.PortStatusActive})
	if err != nil || nova.calls != 0 || !d.active(node, w.port) {
		t.Errorf("already attached: %v, %d attaches, active %v; want no attach and active", err, nova.calls, d.active(node, w.port))
	}

	nova = &fakeNova{attached: openstack.Interface{PortID: "p", PortState: openstack.PortStatusActive}}
	d, attaches := newDriver(nova)
	w, err = d.wire(ctx, node, "dpdk0", openstack.Port{ID: "p", Status: openstack.PortStatusDown})
	if err != nil || nova.calls != 1 || !d.active(node, w.port) || testutil.ToFloat64(attaches) != 1 {
		t.Errorf("attach answered ACTIVE: %v, %d attaches (counted %v), active %v; want one, active", err, nova.calls, testutil.ToFloat64(attaches), d.active(node, w.port))
	}

	nova = &fakeNova{attached: openstack.Interface{PortID: "p", PortState: openstack.PortStatusDown}}
	d, _ = newDriver(nova)
	w, err = d.wire(ctx, node, "dpdk0", openstack.Port{ID: "p", Status: openstack.PortStatusDown})
	if err != nil || d.active(node, w.port) {
		t.Errorf("attach answered DOWN: %v, active %v; want pending", err, d.active(node, w.port))
	}

	nova = &fakeNova{err: fmt.Errorf("attach: %w", openstack.ErrConflict)}
	d, _ = newDriver(nova)
	if _, err := d.wire(ctx, node, "dpdk0", openstack.Port{ID: "p"}); !errors.Is(err, openstack.ErrConflict) || isTerminal(err) {
		t.Errorf("attach conflict: %v, want it retryable and wrapped", err)
	}
}

// TestMACVLANDriverWire: the port's addresses are added to the VM port's
// allowed address pairs once (a repeated wire adds nothing), and the
// interface is ready at once; a port without an address cannot be allowed.
func TestMACVLANDriverWire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cloud := &recordingCloud{parent: openstack.Port{ID: "vm"}}
	d := &macvlanDriver{cloud: cloud}
	node := nodeInfo{Name: "n1", ParentPortID: "vm"}
	p := openstack.Port{ID: "p", MACAddress: "fa:16:3e:00:00:02", FixedIPs: []openstack.FixedIP{{IPAddress: "10.2.0.7"}}}
	if _, err := d.wire(ctx, node, "net1", p); err != nil || !d.active(node, p) {
		t.Fatalf("wire: %v, active %v", err, d.active(node, p))
	}
	cloud.parent.AllowedAddressPairs = []openstack.AddressPair{{IPAddress: "10.2.0.7", MACAddress: "fa:16:3e:00:00:02"}}
	if _, err := d.wire(ctx, node, "net1", p); err != nil {
		t.Fatal(err)
	}
	if len(cloud.calls) != 1 || cloud.calls[0] != "set 1 address pairs on vm" {
		t.Fatalf("calls %q, want one update with one pair", cloud.calls)
	}
	if _, err := d.wire(ctx, node, "net1", openstack.Port{ID: "p2"}); err == nil {
		t.Fatal("a port without an address was allowed")
	}
}
