package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KuryrTenantPolicySpec says what pods of some namespaces may ask for. It is
// written by cluster admins (the object is cluster-scoped: no namespace-scoped
// Role can grant writing it). How several policies combine, and what happens
// with none, is in docs/security.md ("Tenant policy"): a namespace no policy
// selects is unrestricted; every policy that selects a namespace must allow a
// pod's request.
type KuryrTenantPolicySpec struct {
	// Namespaces this policy applies to, by name.
	// +optional
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`
	// NamespaceSelector selects more namespaces by label. A policy applies to
	// a namespace named in Namespaces or matched by NamespaceSelector; an
	// empty selector ({}) matches every namespace, an absent one none.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// AllowedSubnets are the Neutron subnet IDs the pods' interfaces may be
	// in. Absent: any subnet.
	// +optional
	// +listType=set
	AllowedSubnets []string `json:"allowedSubnets,omitempty"`
	// AllowedSecurityGroups are the Neutron security group IDs the pods'
	// ports may carry. Absent: any security group.
	// +optional
	// +listType=set
	AllowedSecurityGroups []string `json:"allowedSecurityGroups,omitempty"`
	// MaxInterfacesPerPod caps how many interfaces (eth0 included in
	// primary mode) one pod may have. 0 or absent: no cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxInterfacesPerPod int `json:"maxInterfacesPerPod,omitempty"`
	// AllowRequestedMAC lets pods choose an interface's MAC (the networks
	// annotation's "mac"). False: refused.
	// +optional
	AllowRequestedMAC bool `json:"allowRequestedMAC,omitempty"`
	// AllowRequestedIPs lets pods choose an interface's IPs (the networks
	// annotation's "ips"). False: refused.
	// +optional
	AllowRequestedIPs bool `json:"allowRequestedIPs,omitempty"`
	// AllowVNFOptions lets the pods' networks use the VNF options of a
	// NetworkAttachmentDefinition (port security off, allowed address
	// pairs). False: refused.
	// +optional
	AllowVNFOptions bool `json:"allowVNFOptions,omitempty"`
}

// KuryrTenantPolicy is an admin-owned policy of what pods of some namespaces
// may ask for: subnets, security groups, how many interfaces, whether they
// may choose MACs and IPs, and VNF options (docs/security.md, "Tenant
// policy").
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ktp,categories=kuryr
// +kubebuilder:printcolumn:name="Max-Interfaces",type=integer,JSONPath=`.spec.maxInterfacesPerPod`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KuryrTenantPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec KuryrTenantPolicySpec `json:"spec"`
}

// KuryrTenantPolicyList is a list of KuryrTenantPolicies.
//
// +kubebuilder:object:root=true
type KuryrTenantPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KuryrTenantPolicy `json:"items"`
}
