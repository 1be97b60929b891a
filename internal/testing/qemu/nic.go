package qemu

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// NIC is a virtio-net-pci device hot-plugged into the VM. Its netdev is a
// UDP socket backend: QEMU sends every frame the guest transmits as one
// datagram to a host socket that counts them (Frames).
type NIC struct {
	ID       string
	MAC      string
	RootPort string

	sink   *net.UDPConn
	frames atomic.Int64
	match  atomic.Int64
	filter func([]byte) bool
	once   sync.Once
}

// NICOptions describes a device to hot-plug.
type NICOptions struct {
	// ID is the QEMU device ID (the netdev is "net-"+ID).
	ID string
	// MAC is the device's MAC, e.g. fa:16:3e:00:00:10.
	MAC string
	// Match, when set, selects the frames counted by Matched (for instance
	// the UDP frames testpmd's txonly mode sends).
	Match func(frame []byte) bool
}

// AttachNIC hot-plugs a virtio-net-pci device on a free pcie-root-port:
// netdev_add (UDP socket backend) then device_add. It returns when QEMU has
// accepted the device; the guest sees it a little later.
func (vm *VM) AttachNIC(ctx context.Context, o NICOptions) (*NIC, error) {
	vm.mu.Lock()
	port := -1
	for i, id := range vm.ports {
		if id == "" {
			port = i
			break
		}
	}
	if _, dup := vm.nics[o.ID]; dup {
		vm.mu.Unlock()
		return nil, fmt.Errorf("attach nic %s: already attached", o.ID)
	}
	if port < 0 {
		vm.mu.Unlock()
		return nil, fmt.Errorf("attach nic %s: all %d root ports are in use", o.ID, len(vm.ports))
	}
	vm.ports[port] = o.ID
	vm.mu.Unlock()
	release := func() {
		vm.mu.Lock()
		vm.ports[port] = ""
		vm.mu.Unlock()
	}

	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		release()
		return nil, fmt.Errorf("attach nic %s: frame sink: %w", o.ID, err)
	}
	n := &NIC{ID: o.ID, MAC: o.MAC, RootPort: rootPort(port), sink: sink, filter: o.Match}
	go n.count()

	netdev := "net-" + o.ID
	err = vm.QMP.Execute(ctx, "netdev_add", map[string]any{
		"type": "socket", "id": netdev,
		"udp": sink.LocalAddr().String(), "localaddr": "127.0.0.1:0",
	}, nil)
	if err != nil {
		n.closeSink()
		release()
		return nil, fmt.Errorf("attach nic %s: %w", o.ID, err)
	}
	dev := map[string]any{
		"driver": "virtio-net-pci", "id": o.ID, "netdev": netdev, "mac": o.MAC, "bus": n.RootPort,
	}
	if vm.opts.VIOMMU {
		dev["iommu_platform"] = true
		dev["ats"] = true
		dev["disable-legacy"] = "on"
	}
	if err := vm.QMP.Execute(ctx, "device_add", dev, nil); err != nil {
		_ = vm.QMP.Execute(context.WithoutCancel(ctx), "netdev_del", map[string]any{"id": netdev}, nil)
		n.closeSink()
		release()
		return nil, fmt.Errorf("attach nic %s: %w", o.ID, err)
	}
	vm.mu.Lock()
	vm.nics[o.ID] = n
	vm.mu.Unlock()
	return n, nil
}

// DetachNIC unplugs the device (device_del), waits for QEMU's DEVICE_DELETED
// event, which comes once the guest has released it, and removes the netdev.
func (vm *VM) DetachNIC(ctx context.Context, id string) error {
	vm.mu.Lock()
	n, ok := vm.nics[id]
	vm.mu.Unlock()
	if !ok {
		return fmt.Errorf("detach nic %s: not attached", id)
	}
	from := vm.QMP.EventSeq()
	if err := vm.QMP.Execute(ctx, "device_del", map[string]any{"id": id}, nil); err != nil {
		return fmt.Errorf("detach nic %s: %w", id, err)
	}
	_, _, err := vm.QMP.WaitEvent(ctx, from, "DEVICE_DELETED", func(e Event) bool {
		var d struct {
			Device string `json:"device"`
		}
		return json.Unmarshal(e.Data, &d) == nil && d.Device == id
	})
	if err != nil {
		return fmt.Errorf("detach nic %s: %w", id, err)
	}
	if err := vm.QMP.Execute(ctx, "netdev_del", map[string]any{"id": "net-" + id}, nil); err != nil {
		return fmt.Errorf("detach nic %s: %w", id, err)
	}
	vm.mu.Lock()
	delete(vm.nics, id)
	for i, p := range vm.ports {
		if p == id {
			vm.ports[i] = ""
		}
	}
	vm.mu.Unlock()
	n.closeSink()
	return nil
}

// Frames is the number of frames the guest has sent on this NIC.
func (n *NIC) Frames() int64 { return n.frames.Load() }

// Matched is the number of those frames that NICOptions.Match selected.
func (n *NIC) Matched() int64 { return n.match.Load() }

func (n *NIC) count() {
	buf := make([]byte, 65536)
	for {
		k, _, err := n.sink.ReadFromUDP(buf)
		if err != nil {
			return
		}
		n.frames.Add(1)
		if n.filter != nil && n.filter(buf[:k]) {
			n.match.Add(1)
		}
	}
}

func (n *NIC) closeSink() {
	n.once.Do(func() { n.sink.Close() })
}
