// Package daemon is kuryr-daemon's logic: it serves the CNI shim on a unix
// socket, waits (event-driven, from informers restricted to its own node)
// for each pod's interfaces to be ACTIVE in the cloud, plugs them into the
// pod (VLAN/MACVLAN links, DPDK device binding), reports them (CNI result,
// device-info files, network-status, the KuryrPod's status) and unplugs them
// again on DEL and GC, working from checkpoints so that nothing is lost
// across restarts.
package daemon

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// Options configure the daemon.
type Options struct {
	// NodeName is the Kubernetes node this daemon serves.
	NodeName string
	// Socket is the unix socket the CNI shim talks to.
	Socket string
	// SysfsRoot is the root the PCI code reads <root>/sys from ("/" on a
	// real node; a simulated tree in the all-in-one and tests).
	SysfsRoot string
	// CheckpointDir holds one record per (container, interface).
	CheckpointDir string
	// DRACheckpointDir is the DRA driver's checkpoint directory
	// (--dra-checkpoint-dir): an interface that is a claim's device is
	// reported from the claim's checkpoint there. "" : none is.
	DRACheckpointDir string
	// DevInfoRoot is the root under which the NPWG device-info directory
	// (var/run/k8s.cni.cncf.io/devinfo/cni) is, when the runtime names no
	// CNIDeviceInfoFile.
	DevInfoRoot string
	// NodeNetns is the network namespace holding the VM's NIC ("" = the
	// daemon's own, as on a real node).
	NodeNetns string
	// ParentInterface overrides the detection of the VM's NIC (the link
	// holding the node's InternalIP).
	ParentInterface string
	// Primary: kuryr-dpdk is the cluster's CNI, called once per pod for
	// eth0; that call plugs every interface of the pod and writes the
	// network-status annotation. Otherwise (under Multus) each call plugs
	// the one interface it names.
	Primary bool
	// InterfacesTimeout bounds how long an ADD waits for the pod's
	// interfaces to be ACTIVE in the cloud before answering "try again".
	InterfacesTimeout time.Duration
	// DeviceTimeout bounds the wait for a hot-plugged DPDK device to appear
	// in the VM (it takes 0.05–0.5 s after Nova's attach).
	DeviceTimeout time.Duration
	// CNILimits bound the CNI socket server (timeouts, requests at once).
	CNILimits cniapi.Limits
	// LabelInterval is how often the node's capability labels are read
	// again (free hugepages change with no notification).
	LabelInterval time.Duration
}

// Defaults are the options of a daemon on a real node.
func Defaults() Options {
	return Options{
		NodeName:          os.Getenv("NODE_NAME"),
		Socket:            cniapi.DefaultSocketPath,
		SysfsRoot:         "/",
		CheckpointDir:     "/var/lib/kuryr-dpdk/checkpoints",
		DevInfoRoot:       "/",
		InterfacesTimeout: 90 * time.Second,
		DeviceTimeout:     30 * time.Second,
		CNILimits:         cniapi.DefaultLimits(),
		LabelInterval:     time.Minute,
	}
}

// AddFlags registers the options on fs.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "the node this daemon serves (default $NODE_NAME)")
	fs.StringVar(&o.Socket, "socket", o.Socket, "unix socket the kuryr-cni shim connects to")
	fs.StringVar(&o.SysfsRoot, "sysfs-root", o.SysfsRoot, "root of the sysfs tree (<root>/sys)")
	fs.StringVar(&o.CheckpointDir, "checkpoint-dir", o.CheckpointDir, "directory of the per-attachment checkpoints")
	fs.StringVar(&o.DevInfoRoot, "devinfo-root", o.DevInfoRoot, "root of the NPWG device-info directory (<root>/var/run/k8s.cni.cncf.io/devinfo/cni)")
	fs.StringVar(&o.NodeNetns, "node-netns", o.NodeNetns, "network namespace holding the VM's NIC (empty: the daemon's own)")
	fs.StringVar(&o.ParentInterface, "parent-interface", o.ParentInterface, "the VM's NIC (default: the link with the MAC the node's KuryrNode records for the VM's port, else the link holding the node's InternalIP)")
	fs.BoolVar(&o.Primary, "primary", o.Primary, "kuryr-dpdk is the cluster's CNI: the eth0 ADD plugs every interface and writes network-status")
	fs.DurationVar(&o.DeviceTimeout, "device-timeout", o.DeviceTimeout, "how long an ADD waits for a hot-plugged DPDK device to appear in the VM")
	fs.DurationVar(&o.InterfacesTimeout, "interfaces-timeout", o.InterfacesTimeout, "how long an ADD waits for the pod's interfaces to be ACTIVE before answering try-again (CNI code 11)")
	fs.DurationVar(&o.LabelInterval, "label-interval", o.LabelInterval, "how often the node's capability labels (kuryr-dpdk.io/*) are read again")
	o.CNILimits.AddFlags(fs)
}

// Validate returns every problem at once, each naming its flag, in the
// order the flags are checked (the same on every run).
func (o *Options) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if o.NodeName == "" {
		bad("node-name", "required (or set NODE_NAME, e.g. from the downward API)")
	}
	if o.Socket == "" || !filepath.IsAbs(o.Socket) {
		bad("socket", "%q must be an absolute path", o.Socket)
	}
	for _, f := range []struct{ name, dir string }{
		{"sysfs-root", o.SysfsRoot}, {"checkpoint-dir", o.CheckpointDir}, {"devinfo-root", o.DevInfoRoot},
	} {
		if !filepath.IsAbs(f.dir) {
			bad(f.name, "%q must be an absolute path", f.dir)
		}
	}
	if o.NodeNetns != "" && !filepath.IsAbs(o.NodeNetns) {
		bad("node-netns", "%q must be an absolute path (e.g. /var/run/netns/node1)", o.NodeNetns)
	}
	if o.DeviceTimeout < 100*time.Millisecond {
		bad("device-timeout", "%s must be at least 100ms", o.DeviceTimeout)
	}
	if o.InterfacesTimeout < time.Second {
		bad("interfaces-timeout", "%s must be at least 1s", o.InterfacesTimeout)
	}
	if o.LabelInterval < time.Second {
		bad("label-interval", "%s must be at least 1s", o.LabelInterval)
	}
	if w := o.InterfacesTimeout + o.DeviceTimeout; o.CNILimits.WriteTimeout <= w {
		bad("cni-write-timeout", "%s must exceed --interfaces-timeout plus --device-timeout (%s)", o.CNILimits.WriteTimeout, w)
	}
	return errors.Join(append(errs, o.CNILimits.Validate())...)
}
