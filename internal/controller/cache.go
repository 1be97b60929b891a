package controller

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// CacheOptions are the controller's informer cache options: every object
// is cached without its managedFields, and pods with only the fields the
// controller reads (metadata, spec.nodeName, spec.hostNetwork,
// status.phase). At thousands of pods the containers, volumes and
// statuses are most of the cache. Writes stay whole: pods are only ever
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
	if p, ok := obj.(*corev1.Pod); ok {
		p.Spec = corev1.PodSpec{NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork}
		p.Status = corev1.PodStatus{Phase: p.Status.Phase}
	}
	return obj, nil
}
