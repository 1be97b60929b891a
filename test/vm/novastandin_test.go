package vm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/neutrontest"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/novastandin"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
)

// TestNovaStandInWithRealNeutron is the Nova stand-in's real backing: a
// port created in a real neutron-server is attached through the Nova API
// (internal/openstack, as the controller calls it), bound in Neutron and
// hot-plugged into the QEMU guest, then detached: device_del, the device
// leaves the guest, the port is unbound.
func TestNovaStandInWithRealNeutron(t *testing.T) {
	g := requireGuest(t)
	srv := neutrontest.New(t)
	vm := startVM(t, qemu.Options{Kernel: g.Kernel, Initrd: g.Initrd})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	netw := neutronPost(t, srv, "network", map[string]any{"name": "dataplane", "project_id": srv.ProjectID})
	sub := neutronPost(t, srv, "subnet", map[string]any{"network_id": netw["id"], "cidr": "10.3.0.0/24", "ip_version": 4, "project_id": srv.ProjectID})
	port := neutronPost(t, srv, "port", map[string]any{"network_id": netw["id"], "name": "dpdk-1",
		"fixed_ips": []map[string]any{{"subnet_id": sub["id"]}}, "project_id": srv.ProjectID})
	portID, mac := port["id"].(string), port["mac_address"].(string)

	neutron, err := novastandin.NewNeutronClient(ctx, srv.URL, srv.ProjectID)
	if err != nil {
		t.Fatal(err)
	}
	nova := novastandin.New(neutron, testr.New(t))
	const serverID, host = "2b9d6c1e-0000-4000-8000-0000000000aa", "compute-vm"
	nova.AddServer(novastandin.Server{ID: serverID, Name: "node-vm", Host: host, Hotplug: &novastandin.QEMUHotplug{VM: vm}})
	if err := nova.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer nova.Close()
	c, err := openstack.New(ctx, openstack.Config{NeutronURL: srv.URL, NovaURL: nova.URL(), ProjectID: srv.ProjectID, RequestTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if _, err := c.AttachInterface(ctx, serverID, portID); err != nil {
		t.Fatalf("attach port %s: %v", portID, err)
	}
	attached := time.Since(start)
	ifname := waitForMAC(ctx, t, vm, mac)
	t.Logf("timing: Nova attach (Neutron bind + device_add) %v, netdev %s with the port's MAC seen after %v",
		attached.Round(time.Millisecond), ifname, time.Since(start).Round(time.Millisecond))
	pci := strings.TrimSpace(sh(ctx, t, vm, fmt.Sprintf("basename $(dirname $(readlink -f /sys/class/net/%s/device))", ifname)))
	p, err := c.GetPort(ctx, portID)
	if err != nil || p.DeviceID != serverID || p.DeviceOwner != novastandin.DeviceOwner || p.HostID != host {
		t.Fatalf("port after attach: %+v, %v", p, err)
	}

	if err := c.DetachInterface(ctx, serverID, portID); err != nil {
		t.Fatalf("detach: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.GetInterface(ctx, serverID, portID)
		if errors.Is(err, openstack.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attachment still there 30 s after the detach: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("timing: detach until Nova reports it done (device_del, DEVICE_DELETED, unbind) %v", time.Since(start).Round(time.Millisecond)-attached.Round(time.Millisecond))
	if res, err := vm.Agent.Run(ctx, "test -e /sys/bus/pci/devices/"+pci); err != nil || res.ExitCode == 0 {
		t.Fatalf("pci device %s still in the guest after the detach (%v)", pci, err)
	}
	if p, err := c.GetPort(ctx, portID); err != nil || p.DeviceID != "" || p.HostID != "" {
		t.Fatalf("port after detach: %+v, %v (want unbound)", p, err)
	}
}

// neutronPost creates a resource in a noauth Neutron.
func neutronPost(t *testing.T, srv *neutrontest.Server, kind string, body map[string]any) map[string]any {
	t.Helper()
	var out map[string]map[string]any
	if err := srv.Call(context.Background(), http.MethodPost, "/"+kind+"s", map[string]any{kind: body}, &out); err != nil {
		t.Fatalf("create %s: %v", kind, err)
	}
	return out[kind]
}
