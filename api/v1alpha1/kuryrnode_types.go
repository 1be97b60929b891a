package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KuryrNodeStatus caches one node VM's OpenStack facts. Neutron and Nova are
// the source of truth: the controller can rebuild all of it after a restart.
type KuryrNodeStatus struct {
	// ServerID is the Nova server that is this node.
	// +optional
	ServerID string `json:"serverID,omitempty"`
	// ParentPortID is the VM's Neutron port (the trunk parent).
	// +optional
	ParentPortID string `json:"parentPortID,omitempty"`
	// ParentMAC is the MAC of the VM's NIC, so the daemon can find it.
	// +optional
	ParentMAC string `json:"parentMAC,omitempty"`
	// +optional
	ParentIPs []string `json:"parentIPs,omitempty"`
	// TrunkID is the Neutron trunk whose parent is ParentPortID, if any.
	// +optional
	TrunkID string `json:"trunkID,omitempty"`
	// VLANIDs in use on that trunk.
	// +optional
	VLANIDs []int `json:"vlanIDs,omitempty"`
	// Pools are the node's port pools, as the controller last saw them.
	// +optional
	Pools []NodePool `json:"pools,omitempty"`
	// HotplugSlots counts the VM's hot-plug slots (PCIe root ports, fixed
	// at boot) for Nova attachments, when the controller is told how many
	// there are: a nested-dpdk interface is never attached past them.
	// +optional
	HotplugSlots *HotplugSlots `json:"hotplugSlots,omitempty"`
	// DPDKDevices are the nested-dpdk ports the controller attached to the
	// node VM: its pre-attached ones (its DPDK pool), which Nova attached
	// ahead of any consumer and which wait on their kernel driver, down and
	// unconfigured, until a pod (CNI ADD) or a ResourceClaim of the DRA
	// driver takes one; and the ports it made and attached for one pod
	// alone (Unpooled), listed from before their attach until they are
	// detached. The controller is their one writer: it writes Owner before
	// any consumer may use a device. The node's daemon reads this list (its
	// own node's) to keep the idle devices untouched, to publish them as
	// DRA devices, and to bind a device for a pod or a claim only when it
	// is listed here with that pod or claim as Owner (docs/security.md).
	// +listType=map
	// +listMapKey=portID
	// +optional
	DPDKDevices []DPDKDevice `json:"dpdkDevices,omitempty"`
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DPDKDeviceState is where a pre-attached DPDK port is in its life.
// +kubebuilder:validation:Enum=Attaching;Ready;InUse
type DPDKDeviceState string

const (
	// DPDKDeviceAttaching: made, and Nova's attach is not done (the port
	// is not ACTIVE on the node's server yet).
	DPDKDeviceAttaching DPDKDeviceState = "Attaching"
	// DPDKDeviceReady: attached and ACTIVE, owned by no consumer.
	DPDKDeviceReady DPDKDeviceState = "Ready"
	// DPDKDeviceInUse: owned by the consumer Owner names.
	DPDKDeviceInUse DPDKDeviceState = "InUse"
)

// DPDKDevice is one nested-dpdk Neutron port attached to a node VM: a
// pre-attached port of the node's DPDK pool, or a pod's own (Unpooled).
type DPDKDevice struct {
	// PortID is the Neutron port.
	PortID string `json:"portID"`
	// MAC is the port's MAC: the daemon finds the device by it.
	MAC       string `json:"mac"`
	NetworkID string `json:"networkID"`
	SubnetID  string `json:"subnetID"`
	// +optional
	SecurityGroups []string        `json:"securityGroups,omitempty"`
	State          DPDKDeviceState `json:"state"`
	// Owner is the consumer of an InUse device: "pod/<pod UID>" for a pod
	// that took it on the CNI path, "claim/<ResourceClaim UID>" for a
	// claim of the DRA driver. Empty otherwise.
	// +optional
	Owner string `json:"owner,omitempty"`
	// Unpooled: the port was made and attached for its owner alone (a
	// pod's own nested-dpdk port, outside any pool; always InUse). It is
	// detached and deleted with its owner, never handed to another.
	// +optional
	Unpooled bool `json:"unpooled,omitempty"`
}

// DPDKDevice returns the entry of status.dpdkDevices for Neutron port
// portID, if there is one.
func (s *KuryrNodeStatus) DPDKDevice(portID string) (DPDKDevice, bool) {
	for _, d := range s.DPDKDevices {
		if d.PortID == portID {
			return d, true
		}
	}
	return DPDKDevice{}, false
}

// HotplugSlots is the use of a node VM's hot-plug slots.
type HotplugSlots struct {
	// Limit is how many ports Nova may hot-attach to the VM besides its
	// own port (--hotplug-slots, or the node's kuryr-dpdk.io/hotplug-slots
	// annotation).
	Limit int `json:"limit"`
	// Used counts the ports attached to the VM besides its own port,
	// attachments under way included.
	Used int `json:"used"`
	// Free is Limit - Used (never below 0).
	Free int `json:"free"`
}

// NodePool is one pool of ready ports on a node: a driver, a subnet and a
// set of security groups.
type NodePool struct {
	Driver   Driver `json:"driver"`
	SubnetID string `json:"subnetID"`
	// +optional
	SecurityGroups []string `json:"securityGroups,omitempty"`
	// Ready ports are wired and ACTIVE: the next pods get them.
	Ready int `json:"ready"`
	// Warming ports are made and not ready yet (being wired, not ACTIVE).
	Warming int `json:"warming"`
	// InUse ports belong to pods.
	InUse int `json:"inUse"`
	// Target is the pool's min: below it the pool is refilled.
	Target int `json:"target"`
	// Max is the most idle ports the pool keeps.
	Max int `json:"max"`
	// LastError is why the last refill failed (the cloud's reason), if it did.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// KuryrNode is the controller's per-node cache (cluster-scoped, named as the node).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=kn,categories=kuryr
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.status.serverID`
// +kubebuilder:printcolumn:name="Trunk",type=string,JSONPath=`.status.trunkID`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KuryrNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Status KuryrNodeStatus `json:"status,omitempty"`
}

// KuryrNodeList is a list of KuryrNodes.
//
// +kubebuilder:object:root=true
type KuryrNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KuryrNode `json:"items"`
}
