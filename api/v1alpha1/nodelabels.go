package v1alpha1

// Labels kuryr-daemon puts on its own Node: what the node offers DPDK, as
// `kuryrctl check` finds it, so that pods on the CNI path can select nodes
// (nodeSelector, nodeAffinity). The daemon owns every label under
// NodeLabelPrefix on its Node and removes those it no longer finds; the
// admission policy (deploy/kuryr-dpdk/admission.yaml) lets it change
// nothing else of a Node, and no other Node.
const (
	// NodeLabelPrefix is the prefix of the daemon's Node labels.
	NodeLabelPrefix = "kuryr-dpdk.io/"
	// NodeLabelUIO is "true" where uio_pci_generic is loaded.
	NodeLabelUIO = NodeLabelPrefix + "uio-pci-generic"
	// NodeLabelVFIO is "true" where vfio-pci can bind devices: behind a
	// virtual IOMMU, or in vfio's unsafe no-IOMMU mode (NodeLabelIOMMU
	// says which).
	NodeLabelVFIO = NodeLabelPrefix + "vfio-pci"
	// NodeLabelIOMMU is the VM's IOMMU: NodeIOMMUVirtual, NodeIOMMUNoIOMMU
	// (none, and vfio's unsafe no-IOMMU mode on) or NodeIOMMUNone.
	NodeLabelIOMMU = NodeLabelPrefix + "iommu"
	// NodeLabelHugepagesFree is the free hugepage memory in MiB rounded
	// down to a power of two ("0" when none is free), so that it changes
	// rarely; select with a nodeAffinity "Gt".
	NodeLabelHugepagesFree = NodeLabelPrefix + "hugepages-free-mib"
	// NodeLabelHotplugSlotsFree is the VM's free hot-plug slots as the
	// controller records them (KuryrNode status.hotplugSlots.free); absent
	// when the controller is not told the VM's limit.
	NodeLabelHotplugSlotsFree = NodeLabelPrefix + "hotplug-slots-free"
)

// Values of NodeLabelIOMMU.
const (
	NodeIOMMUVirtual = "viommu"
	NodeIOMMUNoIOMMU = "no-iommu"
	NodeIOMMUNone    = "none"
)
