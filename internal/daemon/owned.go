package daemon

import (
	"fmt"
	"net"
	"strings"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// What a DPDK device may be bound for. The KuryrPod status says which
// device to look for (its port's MAC), but not which device may be taken:
// the daemon binds a device for a pod only when this node's KuryrNode,
// which only the controller writes (the daemon's RBAC and the admission
// policy refuse it any KuryrNode write), lists the port the status names,
// with that MAC, as the pod's: a port of the node's pool the controller
// gave the pod, or one it attached for the pod alone (docs/security.md,
// "Devices").

// unowned says why interface st of the pod with uid, a nested-dpdk port
// to be bound for the pod (not a claim's device: its Prepare checked the
// claim), is not recorded in the node's KuryrNode status as the pod's, or
// "" when it is. problem is for the pod (it names only the pod's own port
// and MAC); detail adds, for the log, what the KuryrNode shows instead
// (another consumer, another port).
func unowned(node *v1alpha1.KuryrNodeStatus, uid types.UID, st v1alpha1.InterfaceStatus) (problem, detail string) {
	hw, err := net.ParseMAC(strings.TrimSpace(st.MAC))
	if err != nil {
		// Refused by bindingRequest, naming the interface.
		return "", ""
	}
	mac := hw.String()
	owner := v1alpha1.DPDKOwnerPod + string(uid)
	dev, ok := node.DPDKDevice(st.PortID)
	switch {
	case !ok:
		for _, d := range node.DPDKDevices {
			if strings.EqualFold(d.MAC, mac) {
				return fmt.Sprintf("lists MAC %s for another port, and no port %s", mac, st.PortID),
					fmt.Sprintf("port %s, owner %q", d.PortID, d.Owner)
			}
		}
		return fmt.Sprintf("lists no port %s", st.PortID), ""
	case dev.Owner == "":
		return fmt.Sprintf("lists port %s as not given to any consumer yet (%s)", st.PortID, dev.State), ""
	case dev.Owner != owner:
		return fmt.Sprintf("lists port %s as another consumer's", st.PortID), fmt.Sprintf("owner %q", dev.Owner)
	case dev.State != v1alpha1.DPDKDeviceInUse:
		return fmt.Sprintf("lists port %s as %s, not in use by the pod", st.PortID, dev.State), ""
	case !strings.EqualFold(dev.MAC, mac):
		return fmt.Sprintf("lists port %s with another MAC than %s", st.PortID, mac), fmt.Sprintf("MAC %s", dev.MAC)
	}
	return "", ""
}

// ownership checks the nested-dpdk interfaces in want of KuryrPod kp (the
// ones the daemon binds) against node, the status of the node's KuryrNode
// (as the informer last saw it, cachedNode, or as the API server has it,
// kuryrnode.LiveStatus). It returns nil when each is the pod's, else the
// refusal of the first that is not (CNI code 999) and what the log should
// add.
func (d *Daemon) ownership(node *v1alpha1.KuryrNodeStatus, kp *v1alpha1.KuryrPod, want []v1alpha1.InterfaceRequest) (*cnitypes.Error, string) {
	for _, ir := range want {
		st := findStatus(kp, ir.IfName)
		if ir.Driver != v1alpha1.DriverNestedDPDK || ir.ResourceClaim != nil || st == nil {
			continue
		}
		if problem, detail := unowned(node, kp.Spec.PodUID, *st); problem != "" {
			return cniErr(cniapi.CodeInternal, "interface %s: refusing to bind the device with MAC %s: port %s is not recorded as attached to node %s for this pod (KuryrNode %s status.dpdkDevices %s)",
				ir.IfName, st.MAC, st.PortID, d.opts.NodeName, d.opts.NodeName, problem), detail
		}
	}
	return nil, ""
}

// cachedNode is the status of the node's KuryrNode as its informer last
// saw it (empty while none is seen).
func (d *Daemon) cachedNode() *v1alpha1.KuryrNodeStatus {
	d.nodeMu.Lock()
	defer d.nodeMu.Unlock()
	node := d.nodeStatus
	return &node
}
