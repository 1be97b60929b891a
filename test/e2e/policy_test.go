package e2e

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestDaemonsWorkUnderTheNodePolicy: the environment runs with deploy's
// admission policy (the daemons' writes are checked against the node of
// their kubelet-issued tokens), and each node's kuryr-daemon labelled its
// own Node with its DPDK capabilities through it. (The other tests' pods
// becoming ready shows the daemons' KuryrPod and pod writes get through.)
func TestDaemonsWorkUnderTheNodePolicy(t *testing.T) {
	ctx := setup(t, "policy", 2*time.Minute)
	cs := env.Clientset
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, "kuryr-daemon-own-node", metav1.GetOptions{}); err != nil {
		t.Fatalf("the daemons' admission policy: %v", err)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, "kuryr-daemon-own-node", metav1.GetOptions{}); err != nil {
		t.Fatalf("the daemons' admission policy binding: %v", err)
	}
	for _, n := range env.Nodes {
		deadline := time.Now().Add(time.Minute)
		for {
			node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if v := node.Labels[v1alpha1.NodeLabelIOMMU]; v != "" {
				t.Logf("node %s: %s=%s, %s=%s", n.Name, v1alpha1.NodeLabelIOMMU, v,
					v1alpha1.NodeLabelHugepagesFree, node.Labels[v1alpha1.NodeLabelHugepagesFree])
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s has no %s label from its daemon: labels %v", n.Name, v1alpha1.NodeLabelIOMMU, node.Labels)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}
