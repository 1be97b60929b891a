package controller

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// CacheOptions are the controller's informer cache options: every object
// is cached without its managedFields, Nodes without their status but
// their addresses, and pods with only the fields the
// controller reads (metadata but labels, owners and any annotation other
// than the networks request, spec.nodeName, spec.hostNetwork,
// status.phase; the pod's ResourceClaims, spec.resourceClaims and the
// status naming their claims; of its containers only their name and the
// resources of the DRA driver's domain). At thousands of pods the
// containers, volumes and statuses are most of the cache. Writes stay whole: pods are only ever
// patched (finalizers, a merge patch of the difference), and an update
// without managedFields leaves the server's as they were.
func CacheOptions() cache.Options {
	return cache.Options{DefaultTransform: trimForCache}
}

// trimForCache is CacheOptions' transform. Anything else (a tombstone)
// passes unchanged.
func trimForCache(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	if n, ok := obj.(*corev1.Node); ok {
		// Of a Node's status only its addresses are read (nodes.go); its
		// images list alone is kilobytes on a real node.
		n.Status = corev1.NodeStatus{Addresses: n.Status.Addresses}
	}
	if p, ok := obj.(*corev1.Pod); ok {
		// Of a pod's metadata only its networks annotation is read (the
		// planner's); the others (the daemon's network-status, an applier's
		// last-applied-configuration), labels and owners are every
		// cluster pod's, kuryr-dpdk's or not.
		p.Labels, p.OwnerReferences = nil, nil
		if v, ok := p.Annotations[v1alpha1.NetworksAnnotation]; ok {
			p.Annotations = map[string]string{v1alpha1.NetworksAnnotation: v}
		} else {
			p.Annotations = nil
		}
		p.Spec = corev1.PodSpec{NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork, ResourceClaims: p.Spec.ResourceClaims,
			InitContainers: draResources(p.Spec.InitContainers), Containers: draResources(p.Spec.Containers)}
		p.Status = corev1.PodStatus{Phase: p.Status.Phase, ResourceClaimStatuses: p.Status.ResourceClaimStatuses,
			ExtendedResourceClaimStatus: p.Status.ExtendedResourceClaimStatus}
	}
	return obj, nil
}

// draResources keeps, of containers, those that ask for a resource of the
// DRA driver's domain, with their name and those resources only
// (asksThroughDRA reads them).
func draResources(containers []corev1.Container) []corev1.Container {
	var out []corev1.Container
	for _, c := range containers {
		keep := corev1.Container{Name: c.Name}
		for _, rl := range []struct{ from, to *corev1.ResourceList }{
			{&c.Resources.Limits, &keep.Resources.Limits}, {&c.Resources.Requests, &keep.Resources.Requests},
		} {
			for name, q := range *rl.from {
				if strings.HasPrefix(string(name), draDriver+"/") {
					if *rl.to == nil {
						*rl.to = corev1.ResourceList{}
					}
					(*rl.to)[name] = q
				}
			}
		}
		if keep.Resources.Limits != nil || keep.Resources.Requests != nil {
			out = append(out, keep)
		}
	}
	return out
}
