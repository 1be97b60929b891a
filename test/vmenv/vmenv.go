// Package vmenv is what the node VM tests (test/vm, test/vmpod) run around
// the QEMU guest: a cloud (Cloud) — simulated (SimCloud), whose Nova
// hot-plugs into the VM, or real Neutron with the Nova stand-in and the L2
// agent stand-in (NeutronCloud) — and kuryr-controller in process. It is
// test code (it imports cloudsim).
package vmenv

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/controller"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/novastandin"
)

// Cloud is what the in-process controller needs of a cloud.
type Cloud interface {
	// OpenStack is the controller's client.
	OpenStack() *openstack.Client
	// WorkerSubnetID holds the node VM's port; PodSubnetID is the subnet
	// of the primary CNI's eth0.
	WorkerSubnetID() string
	PodSubnetID() string
}

var (
	_ Cloud = (*SimCloud)(nil)
	_ Cloud = (*NeutronCloud)(nil)
)

// SimCloud is the simulated cloud of one run: a workers network, a
// dataplane network, a pods network (for the primary CNI's eth0), the node
// VM's server, and the controller's client.
type SimCloud struct {
	Sim    *cloudsim.Cloud
	Client *openstack.Client
	// Server is the node VM's server; with Trunk its parent port is a
	// trunk parent (nested-vlan subports).
	Server                   cloudsim.SeededServer
	Workers, Dataplane, Pods cloudsim.Subnet
}

// StartSimCloud starts a simulated cloud seeded with the networks and the
// server named node; it stops when the test ends.
func StartSimCloud(ctx context.Context, t *testing.T, node string, trunk bool) *SimCloud {
	t.Helper()
	c := &SimCloud{Sim: cloudsim.New(cloudsim.Options{})}
	if err := c.Sim.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Sim.Close)
	var err error
	if _, c.Workers, err = c.Sim.SeedNetwork("workers", "10.0.0.0/24"); err != nil {
		t.Fatal(err)
	}
	if _, c.Dataplane, err = c.Sim.SeedNetwork("dataplane", "10.3.0.0/24"); err != nil {
		t.Fatal(err)
	}
	if _, c.Pods, err = c.Sim.SeedNetwork("pods", "10.4.0.0/24"); err != nil {
		t.Fatal(err)
	}
	if c.Server, err = c.Sim.SeedServer(cloudsim.ServerSpec{Name: node, SubnetID: c.Workers.ID, Trunk: trunk}); err != nil {
		t.Fatal(err)
	}
	creds := c.Sim.Credentials()
	c.Client, err = openstack.New(ctx, openstack.Config{AuthURL: c.Sim.AuthURL(), Username: creds.UserName, Password: creds.Password,
		UserDomainName: creds.DomainName, ProjectName: creds.ProjectName, ProjectDomainName: creds.DomainName,
		RequestTimeout: heldAttachTimeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// OpenStack implements Cloud.
func (c *SimCloud) OpenStack() *openstack.Client { return c.Client }

// WorkerSubnetID implements Cloud.
func (c *SimCloud) WorkerSubnetID() string { return c.Workers.ID }

// PodSubnetID implements Cloud.
func (c *SimCloud) PodSubnetID() string { return c.Pods.ID }

// DataplanePorts are the ports left on the dataplane network.
func (c *SimCloud) DataplanePorts() []cloudsim.Port {
	var out []cloudsim.Port
	for _, p := range c.Sim.Ports() {
		if p.NetworkID == c.Dataplane.NetworkID {
			out = append(out, p)
		}
	}
	return out
}

// AttachEvent is one Nova attach as the VM's hook saw it.
type AttachEvent struct {
	Port        cloudsim.Port
	Called      time.Time // Nova's attach reached the hypervisor
	Released    time.Time // the test let it go on (see VMHook.Gate)
	DeviceAdded time.Time // QMP device_add returned
	Err         error
}

// VMHook is the simulated Nova's view of the QEMU VM: attach and detach go
// to the Nova stand-in's QEMU hot-plugger, as libvirt's would.
type VMHook struct {
	HP *novastandin.QEMUHotplug
	// Gate, when set, holds attaches until it is closed (within
	// heldAttachTimeout, the simulated cloud's request timeout), so that a guest
	// watcher started meanwhile sees the device appear.
	Gate chan struct{}
	// Attaches and Detaches receive each attach and each successful detach
	// (dropped when full).
	Attaches chan AttachEvent
	Detaches chan cloudsim.Port
}

var _ cloudsim.ServerHook = (*VMHook)(nil)

// NewVMHook is a hook on hp with room for a few events and no gate.
func NewVMHook(hp *novastandin.QEMUHotplug) *VMHook {
	return &VMHook{HP: hp, Attaches: make(chan AttachEvent, 4), Detaches: make(chan cloudsim.Port, 4)}
}

// Attached hot-plugs the port's device (once Gate, if any, is closed).
func (h *VMHook) Attached(ctx context.Context, serverID string, p cloudsim.Port) error {
	ev := AttachEvent{Port: p, Called: time.Now()}
	if h.Gate != nil {
		select {
		case <-h.Gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ev.Released = time.Now()
	ev.Err = h.HP.Plug(ctx, serverID, novastandin.Device{PortID: p.ID, MAC: p.MACAddress})
	ev.DeviceAdded = time.Now()
	select {
	case h.Attaches <- ev:
	default:
	}
	return ev.Err
}

// WaitAttach waits for the next attach and returns it; t fails when none
// comes before ctx ends or the hot-plug failed.
func (h *VMHook) WaitAttach(ctx context.Context, t testing.TB) AttachEvent {
	t.Helper()
	var ev AttachEvent
	select {
	case ev = <-h.Attaches:
	case <-ctx.Done():
		t.Fatal("Nova never attached the pod's port to the VM")
	}
	if ev.Err != nil {
		t.Fatalf("hot-plug of port %s: %v", ev.Port.ID, ev.Err)
	}
	return ev
}

// Detached unplugs the port's device.
func (h *VMHook) Detached(ctx context.Context, serverID string, p cloudsim.Port) error {
	err := h.HP.Unplug(ctx, serverID, novastandin.Device{PortID: p.ID, MAC: p.MACAddress})
	if err == nil {
		select {
		case h.Detaches <- p:
		default:
		}
	}
	return err
}

// heldAttachTimeout is the simulated cloud's request timeout: longer than a
// test holds Nova's attach (VMHook.Gate), e.g. test/vmpod/vfio while it
// kills the daemon mid-ADD and the kubelet starts it again, over 20 s under
// CI's load. With 20 s the controller's attach timed out while held and
// retried against a port already bound (test/vm's vfio run, when it still
// killed the daemon, failed so in CI).
const heldAttachTimeout = 3 * time.Minute

// ControllerOptions are the in-process controller's settings that differ
// between the runs.
type ControllerOptions struct {
	ClusterID string
	// Primary makes kuryr-dpdk the cluster's CNI: eth0 from nested-vlan
	// on the pods subnet.
	Primary bool
	// PodSecurityGroups are the groups of a network that names none (a
	// pooled interface needs some).
	PodSecurityGroups []string
	// Pools sizes the pools (pools.nestedDPDK: the pre-attached DPDK
	// ports the DRA driver advertises); HotplugSlots counts the VM's
	// hot-plug slots (0: not counted).
	Pools        controller.PoolOptions
	HotplugSlots int
}

// StartController runs kuryr-controller in process (manager, reconciler,
// garbage collector) against cloud until the test ends. TestMain must have
// set controller-runtime's logger (ctrl.SetLogger).
func StartController(ctx context.Context, t *testing.T, cfg *rest.Config, scheme *runtime.Scheme, cloud Cloud, o ControllerOptions) {
	t.Helper()
	skip := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := controller.Defaults()
	opts.ClusterID = o.ClusterID
	opts.Primary = o.Primary
	if o.Primary {
		opts.DefaultDriver = v1alpha1.DriverNestedVLAN
		opts.PodSubnetID = cloud.PodSubnetID()
	}
	opts.WorkerSubnetIDs = []string{cloud.WorkerSubnetID()}
	opts.PodSecurityGroups = o.PodSecurityGroups
	opts.Pools = o.Pools
	opts.HotplugSlots = o.HotplugSlots
	opts.ActiveTimeout = controller.Duration{Duration: 30 * time.Second}
	opts.GCPeriod = controller.Duration{Duration: time.Hour}
	opts.ReleaseGrace = controller.Duration{Duration: 30 * time.Second}
	r := controller.NewPodReconciler(mgr.GetClient(), cloud.OpenStack(), mgr.GetEventRecorder("kuryr-controller"), opts, nil)
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(controller.NewGarbageCollector(r)); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(cctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller stopped with: %v", err)
		}
	})
}

// IsTxonlyFrame reports whether frame is one that testpmd's txonly mode
// sends by default: IPv4/UDP from 198.18.0.1 to 198.18.0.2.
func IsTxonlyFrame(f []byte) bool {
	return len(f) >= 34 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 17 &&
		string(f[26:30]) == "\xc6\x12\x00\x01" && string(f[30:34]) == "\xc6\x12\x00\x02"
}

// IsTaggedFrom reports whether f is an 802.1Q frame tagged vlanID from
// mac that carries an ARP packet whose sender is ip or an IPv4 packet from
// ip: a pod's traffic on its trunk subport, as the VM's trunk NIC sends it.
func IsTaggedFrom(f []byte, vlanID int, mac net.HardwareAddr, ip net.IP) bool {
	ip4 := ip.To4()
	if len(f) < 18 || f[12] != 0x81 || f[13] != 0x00 || ip4 == nil || len(mac) != 6 ||
		int(binary.BigEndian.Uint16(f[14:16])&0x0fff) != vlanID || !bytes.Equal(f[6:12], mac) {
		return false
	}
	switch binary.BigEndian.Uint16(f[16:18]) {
	case 0x0806: // ARP: the sender's protocol address is 14 bytes in
		return len(f) >= 36 && bytes.Equal(f[32:36], ip4)
	case 0x0800: // IPv4: the source address is 12 bytes in
		return len(f) >= 38 && bytes.Equal(f[30:34], ip4)
	}
	return false
}

// LastLines is the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
