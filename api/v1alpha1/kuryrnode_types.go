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
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
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
