package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of kuryr-dpdk's resources.
var GroupVersion = schema.GroupVersion{Group: "kuryr-dpdk.io", Version: "v1alpha1"}

// AddToScheme registers the types of this package with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&KuryrPod{}, &KuryrPodList{},
		&KuryrNode{}, &KuryrNodeList{},
		&KuryrTenantPolicy{}, &KuryrTenantPolicyList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// AddToRESTMapper adds this package's kinds to m with their scopes (the
// kubebuilder markers', which deploy/crds says too), so that a client
// maps them without asking the API server for discovery
// (internal/cmdutil/manager).
func AddToRESTMapper(m *meta.DefaultRESTMapper) {
	m.Add(GroupVersion.WithKind("KuryrPod"), meta.RESTScopeNamespace)
	m.Add(GroupVersion.WithKind("KuryrNode"), meta.RESTScopeRoot)
	m.Add(GroupVersion.WithKind("KuryrTenantPolicy"), meta.RESTScopeRoot)
}
