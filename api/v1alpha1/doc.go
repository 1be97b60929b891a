// Package v1alpha1 holds the kuryr-dpdk.io/v1alpha1 API: KuryrPod, the record of
// one pod's network interfaces, and KuryrNode, the controller's cache of one
// node VM's OpenStack facts. This is the one place their schemas live; the CRD
// YAML in deploy/crds and zz_generated.deepcopy.go are generated from it by
// `make generate` (controller-tools).
//
// +kubebuilder:object:generate=true
// +groupName=kuryr-dpdk.io
package v1alpha1
