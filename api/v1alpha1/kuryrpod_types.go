package v1alpha1

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
)

// Driver says how an interface is backed in OpenStack and plugged on the node.
// +kubebuilder:validation:Enum=nested-vlan;nested-macvlan;nested-dpdk
type Driver string

const (
	// DriverNestedVLAN: a Neutron trunk subport, a VLAN sub-interface of the
	// VM's NIC in the pod.
	DriverNestedVLAN Driver = netconf.DriverNestedVLAN
	// DriverNestedMACVLAN: an allowed-address-pair on the VM's port, a MACVLAN
	// of the VM's NIC in the pod.
	DriverNestedMACVLAN Driver = netconf.DriverNestedMACVLAN
	// DriverNestedDPDK: a Neutron port hot-attached to the VM by Nova, whose
	// PCI device is bound to a DPDK driver for the pod.
	DriverNestedDPDK Driver = netconf.DriverNestedDPDK
)

// Valid reports whether d is one of the known drivers.
func (d Driver) Valid() bool { return netconf.ValidDriver(string(d)) }

// DPDK kernel drivers a nested-dpdk device can be bound to.
const (
	DPDKDriverUIOPCIGeneric = netconf.DPDKDriverUIO
	DPDKDriverVFIOPCI       = netconf.DPDKDriverVFIO
)

// InterfaceState is where one interface is in its life.
// +kubebuilder:validation:Enum=Pending;Active;Plugged;Failed;Releasing
type InterfaceState string

const (
	// StatePending: the controller is creating the cloud resources.
	StatePending InterfaceState = "Pending"
	// StateActive: the cloud resources exist and are ACTIVE; the daemon may plug it.
	StateActive InterfaceState = "Active"
	// StatePlugged: the daemon has put it in the pod (or bound the device).
	StatePlugged InterfaceState = "Plugged"
	// StateFailed: it could not be made; Message says why.
	StateFailed InterfaceState = "Failed"
	// StateReleasing: the pod is going and its cloud resources are being released.
	StateReleasing InterfaceState = "Releasing"
)

// KuryrPodSpec is what the controller worked out the pod needs.
type KuryrPodSpec struct {
	// PodUID is the UID of the pod this record is for. A pod recreated with
	// the same name gets a new UID and so a new record.
	PodUID types.UID `json:"podUID"`
	// NodeName is the node the pod is scheduled to.
	NodeName string `json:"nodeName"`
	// Interfaces the pod asked for, in the order the CNI reports them.
	// +listType=map
	// +listMapKey=ifName
	Interfaces []InterfaceRequest `json:"interfaces,omitempty"`
}

// InterfaceRequest is one interface a pod needs.
type InterfaceRequest struct {
	// IfName is the interface name in the pod (eth0, net1, or as requested).
	IfName string `json:"ifName"`
	// Network is the NetworkAttachmentDefinition, namespace/name; empty for the
	// default (primary) interface.
	// +optional
	Network string `json:"network,omitempty"`
	Driver  Driver `json:"driver"`
	// SubnetID is the Neutron subnet the port is created in.
	SubnetID string `json:"subnetID"`
	// +optional
	SecurityGroups []string `json:"securityGroups,omitempty"`
	// DPDKDriver is the kernel driver a nested-dpdk device is bound to.
	// +optional
	DPDKDriver string `json:"dpdkDriver,omitempty"`
	// MAC requested by the pod, if any.
	// +optional
	MAC string `json:"mac,omitempty"`
	// IPs requested by the pod, if any.
	// +optional
	IPs []string `json:"ips,omitempty"`
	// DefaultRoute: this interface carries the pod's default route.
	// +optional
	DefaultRoute bool `json:"defaultRoute,omitempty"`
	// DefaultRouteGateways are the gateways the pod named for its default
	// route (the networks annotation entry's default-route), at most one
	// per IP family; empty with DefaultRoute means the subnet's gateway.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	DefaultRouteGateways []string `json:"defaultRouteGateways,omitempty"`
	// MTU is the network's mtu (the NetworkAttachmentDefinition's), 0 for the
	// Neutron network's. The daemon applies it when it is not above the
	// Neutron network's MTU (status), and refuses the interface otherwise.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	MTU int `json:"mtu,omitempty"`
	// CNIArgs is the networks annotation entry's cni-args, a JSON object,
	// as the pod gave it.
	// +optional
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	CNIArgs *runtime.RawExtension `json:"cniArgs,omitempty"`
	// PortSecurityEnabled false: the port is created with Neutron port
	// security off and no security groups (the network's
	// portSecurityEnabled). Nil is Neutron's default (on).
	// +optional
	PortSecurityEnabled *bool `json:"portSecurityEnabled,omitempty"`
	// AllowedAddressPairs the port is created with (the network's).
	// +optional
	// +kubebuilder:validation:MaxItems=10
	AllowedAddressPairs []AddressPair `json:"allowedAddressPairs,omitempty"`
	// ResourceClaim, on a nested-dpdk interface, is the pod's ResourceClaim
	// of the DRA driver (dpdk.kuryr-dpdk.io) whose device the interface
	// is: the controller makes and attaches no port for it, and the daemon
	// reports the device the claim's Prepare bound, without binding it
	// again or giving it back on DEL (the claim's Unprepare does).
	// +optional
	ResourceClaim *ClaimedDevice `json:"resourceClaim,omitempty"`
}

// ClaimedDevice is the device of a ResourceClaim an interface is.
type ClaimedDevice struct {
	// Name of the ResourceClaim, in the pod's namespace.
	Name string `json:"name"`
	// UID of the ResourceClaim.
	UID types.UID `json:"uid"`
	// PortID is the Neutron port of the allocated device (device
	// "port-<port ID>" of the node's pool).
	PortID string `json:"portID"`
}

// AddressPair is an address (IP or CIDR) a port may use besides its own,
// with the MAC that may use it ("" is the port's).
type AddressPair struct {
	IPAddress string `json:"ipAddress"`
	// +optional
	MACAddress string `json:"macAddress,omitempty"`
}

// KuryrPodStatus is what exists for the pod, in the cloud and on the node.
type KuryrPodStatus struct {
	// ObservedGeneration is the spec generation this status is for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Summary is a one-line view for kubectl: "2/3 active" (interfaces
	// ACTIVE in the cloud), "3/3 plugged" once the node's daemon plugged
	// any into the pod, or why the pod's interfaces failed.
	// +optional
	Summary string `json:"summary,omitempty"`
	// +listType=map
	// +listMapKey=ifName
	// +optional
	Interfaces []InterfaceStatus `json:"interfaces,omitempty"`
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// WaitingForNetworks lists the NetworkAttachmentDefinitions
	// (namespace/name) the pod's request waits for: missing, or invalid.
	// Creating or changing one of them plans the pod again. Empty once the
	// request is planned.
	// +listType=set
	// +optional
	WaitingForNetworks []string `json:"waitingForNetworks,omitempty"`
}

// InterfaceStatus is one interface as it exists.
type InterfaceStatus struct {
	IfName string `json:"ifName"`
	Driver Driver `json:"driver"`
	// +optional
	Network string `json:"network,omitempty"`
	// PortID is the Neutron port backing the interface.
	// +optional
	PortID string `json:"portID,omitempty"`
	// +optional
	MAC string `json:"mac,omitempty"`
	// IPs in CIDR form, e.g. 10.0.0.5/24.
	// +optional
	IPs []string `json:"ips,omitempty"`
	// +optional
	MTU int `json:"mtu,omitempty"`
	// +optional
	Gateway string `json:"gateway,omitempty"`
	// +optional
	Routes []Route `json:"routes,omitempty"`
	// +optional
	DNS *DNS `json:"dns,omitempty"`
	// VLANID is the segmentation ID of a nested-vlan subport on the node's trunk.
	// +optional
	VLANID int `json:"vlanID,omitempty"`
	// PCIAddress of a nested-dpdk device in the node VM (filled in by the daemon).
	// +optional
	PCIAddress string `json:"pciAddress,omitempty"`
	// OriginalDriver the nested-dpdk device had before binding (daemon).
	// +optional
	OriginalDriver string `json:"originalDriver,omitempty"`
	// BoundDriver the nested-dpdk device is bound to now (daemon).
	// +optional
	BoundDriver string         `json:"boundDriver,omitempty"`
	State       InterfaceState `json:"state"`
	// Message says why the interface is in its state, when it is not Active or Plugged.
	// +optional
	Message string `json:"message,omitempty"`
}

// Route is a route of an interface.
type Route struct {
	// Dst in CIDR form.
	Dst string `json:"dst"`
	// +optional
	Gateway string `json:"gateway,omitempty"`
}

// DNS settings from the Neutron subnet.
type DNS struct {
	// +optional
	Nameservers []string `json:"nameservers,omitempty"`
	// +optional
	Domain string `json:"domain,omitempty"`
	// +optional
	Search []string `json:"search,omitempty"`
}

// KuryrPod records the network interfaces kuryr-dpdk made for one pod. It
// has the pod's name and namespace, an owner reference to the pod, the node
// label and a finalizer that is removed once the cloud resources are released.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kp,categories=kuryr
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.status.summary`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KuryrPod struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec KuryrPodSpec `json:"spec,omitempty"`
	// +optional
	Status KuryrPodStatus `json:"status,omitempty"`
}

// KuryrPodList is a list of KuryrPods.
//
// +kubebuilder:object:root=true
type KuryrPodList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KuryrPod `json:"items"`
}

// InterfacesSummary is the status summary of interfaces in these states:
// "n/m plugged" when the node's daemon plugged any into the pod, else
// "n/m active". The controller and the daemon both write it, and write the
// same for the same states, so that neither rewrites the other's.
func InterfacesSummary(ifaces []InterfaceStatus) string {
	plugged, active := 0, 0
	for _, s := range ifaces {
		switch s.State {
		case StatePlugged:
			plugged++
		case StateActive:
			active++
		}
	}
	if plugged > 0 {
		return fmt.Sprintf("%d/%d plugged", plugged, len(ifaces))
	}
	return fmt.Sprintf("%d/%d active", active, len(ifaces))
}
