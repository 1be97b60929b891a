package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestCacheTransformKeepsWhatIsRead: the transform drops managedFields
// from every object and from pods what the controller never reads, and
// keeps what it does read (the planner's annotations, the node, host
// network, phase, finalizers, deletion).
func TestCacheTransformKeepsWhatIsRead(t *testing.T) {
	t.Parallel()
	now := metav1.Now()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "vnf"},
			Annotations: map[string]string{v1alpha1.NetworksAnnotation: "mgmt"}, Finalizers: []string{v1alpha1.Finalizer},
			DeletionTimestamp: &now, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.PodSpec{NodeName: "n1", HostNetwork: true, Containers: []corev1.Container{{Name: "vnf", Image: "vnf:1"}},
			Volumes: []corev1.Volume{{Name: "v"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady}}},
	}
	out, err := trimForCache(pod)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Pod)
	if got.ManagedFields != nil || got.Spec.Containers != nil || got.Spec.Volumes != nil || got.Status.PodIP != "" || got.Status.Conditions != nil {
		t.Errorf("kept what the controller never reads: %+v", got)
	}
	if got.Spec.NodeName != "n1" || !got.Spec.HostNetwork || got.Status.Phase != corev1.PodRunning || got.UID != "u1" ||
		got.Annotations[v1alpha1.NetworksAnnotation] != "mgmt" || len(got.Finalizers) != 1 || got.DeletionTimestamp == nil || got.Labels["app"] != "vnf" {
		t.Errorf("dropped what the controller reads: %+v", got)
	}
	kp := &v1alpha1.KuryrPod{ObjectMeta: metav1.ObjectMeta{Name: "p", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kuryr"}}},
		Status: v1alpha1.KuryrPodStatus{Summary: "1/1 active"}}
	if _, err := trimForCache(kp); err != nil || kp.ManagedFields != nil || kp.Status.Summary != "1/1 active" {
		t.Errorf("KuryrPod after the transform: %+v, %v", kp, err)
	}
	if v, err := trimForCache("tombstone"); err != nil || v != "tombstone" {
		t.Errorf("a non-object: %v, %v", v, err)
	}
}
