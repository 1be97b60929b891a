package v1alpha1

import "github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"

// Names shared by the controller, the daemon and the operator's tools.
const (
	// Finalizer is set on pods and KuryrPods while cloud resources exist.
	Finalizer = "kuryr-dpdk.io/release"
	// NodeLabel on a KuryrPod names the node it is for, so that each daemon
	// watches only its own node's resources.
	NodeLabel = "kuryr-dpdk.io/node"
	// PodUIDLabel on a KuryrPod carries the UID of the pod it is for.
	PodUIDLabel = "kuryr-dpdk.io/pod-uid"

	// NetworksAnnotation is the Network Plumbing WG request for extra networks.
	NetworksAnnotation = "k8s.v1.cni.cncf.io/networks"
	// NetworkStatusAnnotation is the Network Plumbing WG report of a pod's networks.
	NetworkStatusAnnotation = "k8s.v1.cni.cncf.io/network-status"
	// KuryrConfigAnnotation is kuryr-kubernetes' way of saying what backs a
	// NetworkAttachmentDefinition: {"subnetId": ..., "driverType": ...}.
	KuryrConfigAnnotation = netconf.KuryrConfigAnnotation

	// HotplugSlotsAnnotation on a Node sets how many ports Nova may
	// hot-attach to its VM (its free PCIe root ports), overriding the
	// controller's --hotplug-slots.
	HotplugSlotsAnnotation = "kuryr-dpdk.io/hotplug-slots"

	// DPDKPoolSizeAnnotation on a Node sizes its pre-attached DPDK pools
	// ("min,max[,batch]"), overriding the controller's pools.nestedDPDK.
	DPDKPoolSizeAnnotation = "kuryr-dpdk.io/dpdk-pool-size"
	// VLANPoolSizeAnnotation on a Node sizes its nested-vlan subport pools
	// ("min,max[,batch]"), overriding the controller's pools.nestedVLAN.
	VLANPoolSizeAnnotation = "kuryr-dpdk.io/vlan-pool-size"
	// MACVLANPoolSizeAnnotation on a Node sizes its nested-macvlan
	// address-pair pools ("min,max[,batch]"), overriding the controller's
	// pools.nestedMACVLAN.
	MACVLANPoolSizeAnnotation = "kuryr-dpdk.io/macvlan-pool-size"

	// CNIType is the "type" of a CNI network config handled by kuryr-dpdk.
	CNIType = netconf.PluginType
)

// Names of the DRA driver, shared by the controller (the pool that owns
// the devices) and the daemon's kubelet plugin (that publishes and
// prepares them).
const (
	// DRADriverName is the DRA driver's name: the ResourceSlices' and the
	// allocation results' driver, the opaque configuration's driver, the
	// attributes' domain, and the CDI vendor.
	DRADriverName = "dpdk.kuryr-dpdk.io"
	// DRADeviceNamePrefix + a port ID is a device's name in the driver's
	// ResourceSlices.
	DRADeviceNamePrefix = "port-"
	// DPDKOwnerPod + a pod UID is the owner of a DPDK device a pod took
	// from the node's pool on the CNI path, or that was attached for it
	// alone (KuryrNode status.dpdkDevices).
	DPDKOwnerPod = "pod/"
	// DPDKOwnerClaim + a ResourceClaim UID is the owner of a DPDK pool
	// device a claim of the DRA driver holds.
	DPDKOwnerClaim = "claim/"
)

// Condition types of a KuryrPod.
const (
	// ConditionReady: every interface is ready for the pod (Active in the
	// cloud, and plugged once the daemon has done its part).
	ConditionReady = "Ready"
	// ConditionCloudReady: every interface's cloud resources exist and are ACTIVE.
	ConditionCloudReady = "CloudReady"
	// ConditionSpecValid: the pod's network request could be understood.
	// False with reason InvalidSpec is terminal until the pod or NAD changes.
	ConditionSpecValid = "SpecValid"
	// ConditionPolicyAllowed: the KuryrTenantPolicies that select the pod's
	// namespace allow its request. False (reason PolicyViolation, the
	// message naming the policy and the rule) is terminal: the pod gets no
	// interface and no cloud call is made for it; it waits to be recreated.
	ConditionPolicyAllowed = "PolicyAllowed"
)
