package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestCacheTransformKeepsWhatIsRead: the transform drops managedFields
// from every object, from Nodes their status but the addresses, and from
// pods what the controller never reads (labels, owners, annotations but
// the networks request, containers, volumes, most of the status), and
// keeps what it does read (the planner's annotation, the node, host
// network, phase, finalizers, deletion; the pod's ResourceClaims and, of
// its containers, only the resources of the DRA driver's domain).
func TestCacheTransformKeepsWhatIsRead(t *testing.T) {
	t.Parallel()
	now := metav1.Now()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "vnf"},
			Annotations: map[string]string{v1alpha1.NetworksAnnotation: "mgmt", v1alpha1.NetworkStatusAnnotation: "[{}]",
				"kubectl.kubernetes.io/last-applied-configuration": "{}"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "vnf-1"}}, Finalizers: []string{v1alpha1.Finalizer},
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
	if got.ManagedFields != nil || got.Labels != nil || got.OwnerReferences != nil || len(got.Annotations) != 1 || got.Spec.Containers != nil || got.Spec.Volumes != nil || got.Status.PodIP != "" || got.Status.Conditions != nil {
		t.Errorf("kept what the controller never reads: %+v", got)
	}
	claim := "port"
	dra := &corev1.Pod{
		Spec: corev1.PodSpec{ResourceClaims: []corev1.PodResourceClaim{{Name: "dpdk", ResourceClaimName: &claim}},
			Containers: []corev1.Container{{Name: "vnf", Image: "vnf:1", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				draDriver + "/port": resource.MustParse("1"), corev1.ResourceCPU: resource.MustParse("1")}}}}},
		Status: corev1.PodStatus{ResourceClaimStatuses: []corev1.PodResourceClaimStatus{{Name: "t", ResourceClaimName: &claim}},
			ExtendedResourceClaimStatus: &corev1.PodExtendedResourceClaimStatus{ResourceClaimName: "ext"}},
	}
	if _, err := trimForCache(dra); err != nil {
		t.Fatal(err)
	}
	if len(dra.Spec.ResourceClaims) != 1 || len(dra.Status.ResourceClaimStatuses) != 1 || dra.Status.ExtendedResourceClaimStatus == nil ||
		!asksThroughDRA(dra) || len(dra.Spec.Containers) != 1 || len(dra.Spec.Containers[0].Resources.Limits) != 1 || dra.Spec.Containers[0].Image != "" {
		t.Errorf("the pod's claims, or only its resources of the DRA driver, not kept: %+v", dra)
	}
	noAnnotations := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"a": "b"}}}
	if _, err := trimForCache(noAnnotations); err != nil || noAnnotations.Annotations != nil {
		t.Errorf("a pod without the networks annotation kept %v, %v", noAnnotations.Annotations, err)
	}
	if got.Spec.NodeName != "n1" || !got.Spec.HostNetwork || got.Status.Phase != corev1.PodRunning || got.UID != "u1" ||
		got.Annotations[v1alpha1.NetworksAnnotation] != "mgmt" || len(got.Finalizers) != 1 || got.DeletionTimestamp == nil {
		t.Errorf("dropped what the controller reads: %+v", got)
	}
	kp := &v1alpha1.KuryrPod{ObjectMeta: metav1.ObjectMeta{Name: "p", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kuryr"}}},
		Status: v1alpha1.KuryrPodStatus{Summary: "1/1 active"}}
	if _, err := trimForCache(kp); err != nil || kp.ManagedFields != nil || kp.Status.Summary != "1/1 active" {
		t.Errorf("KuryrPod after the transform: %+v, %v", kp, err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: map[string]string{"a": "b"}},
		Spec: corev1.NodeSpec{ProviderID: "openstack:///s1"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}},
			Images:     []corev1.ContainerImage{{Names: []string{"vnf:1"}, SizeBytes: 1 << 30}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady}}, NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"}}}
	if _, err := trimForCache(node); err != nil || node.Status.Images != nil || node.Status.Conditions != nil || node.Status.NodeInfo.KubeletVersion != "" {
		t.Errorf("a Node's status kept what the controller never reads: %+v, %v", node.Status, err)
	}
	if internalIP(node) != "10.0.0.5" || node.Spec.ProviderID != "openstack:///s1" || node.Annotations["a"] != "b" {
		t.Errorf("a Node lost what the controller reads: %+v", node)
	}
	if v, err := trimForCache("tombstone"); err != nil || v != "tombstone" {
		t.Errorf("a non-object: %v, %v", v, err)
	}
}
