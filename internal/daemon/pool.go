package daemon

import (
	"context"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// nodeChanged takes in this node's KuryrNode as the informer last saw it
// (nil: deleted): the pool's devices waiting on their kernel driver go to
// the idle keeper, the labeller learns the free hot-plug slots, and the
// ADDs waiting for a device to be recorded as their pod's look again.
func (d *Daemon) nodeChanged(kn *v1alpha1.KuryrNode) {
	var st v1alpha1.KuryrNodeStatus
	if kn != nil {
		st = *kn.Status.DeepCopy()
	}
	d.nodeMu.Lock()
	d.nodeStatus = st
	d.setIdleLocked()
	d.nodeMu.Unlock()
	d.waiters.changedAll()
	select {
	case d.labelKick <- struct{}{}:
	default:
	}
}

// idleMACs are the MACs of the node's pre-attached DPDK devices that no
// consumer owns yet (Attaching, Ready), but never the VM's own NIC's.
func idleMACs(st v1alpha1.KuryrNodeStatus) []string {
	var macs []string
	for _, dev := range st.DPDKDevices {
		if dev.State != v1alpha1.DPDKDeviceAttaching && dev.State != v1alpha1.DPDKDeviceReady {
			continue
		}
		if st.ParentMAC != "" && strings.EqualFold(dev.MAC, st.ParentMAC) {
			continue
		}
		macs = append(macs, dev.MAC)
	}
	return macs
}

// setIdleLocked gives the idle keeper the pool's devices and the node's
// own addresses: its VM port's (KuryrNode) and its Node's, as read at
// start (KeepPoolIdle). d.nodeMu is held, so that the keeper's last Set is
// of the last status seen.
func (d *Daemon) setIdleLocked() {
	st := d.nodeStatus
	ips := append([]net.IP(nil), d.nodeAddrs...)
	for _, s := range st.ParentIPs {
		if ip, _, err := net.ParseCIDR(s); err == nil {
			ips = append(ips, ip)
		} else if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		}
	}
	d.keeper.Set(idleMACs(st), ips)
}

// KeepPoolIdle keeps this node's pre-attached DPDK devices that wait on
// their kernel driver down and unconfigured until ctx ends
// (binding.IdleKeeper), as the node's KuryrNode lists them. It reads the
// Node's addresses once first: a link holding one is the node's and is
// never touched.
func (d *Daemon) KeepPoolIdle(ctx context.Context) error {
	var node corev1.Node
	if err := d.reader.Get(ctx, types.NamespacedName{Name: d.opts.NodeName}, &node); err != nil {
		d.log.Error(err, "Reading the node's addresses; keeping pool devices idle with the KuryrNode's alone", "node", d.opts.NodeName)
	}
	var addrs []net.IP
	for _, a := range node.Status.Addresses {
		if ip := net.ParseIP(a.Address); ip != nil {
			addrs = append(addrs, ip)
		}
	}
	d.nodeMu.Lock()
	d.nodeAddrs = addrs
	d.setIdleLocked()
	d.nodeMu.Unlock()
	return d.keeper.Run(ctx)
}
