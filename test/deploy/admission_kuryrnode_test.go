package deploy

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestDaemonTokenCannotWriteKuryrNodes: a node's KuryrNode says whose each
// DPDK device attached to the node is, and the daemon binds a device only
// for the owner listed there; so no daemon may write one. With the token
// the kubelet would give kuryr-daemon's pod on node A, the writes a
// compromised node would try on its own KuryrNode (its status naming the
// attacker's pod as a device's owner, its object, a new KuryrNode, its
// deletion) are refused by the base's RBAC; with RBAC widened to allow
// them (a mistake in a later ClusterRole), the admission policy refuses
// them still. The KuryrNode is unchanged and no other is made; reading it
// (list, as the daemon's informer does) works.
func TestDaemonTokenCannotWriteKuryrNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	scheme, admin := applyBase(t)
	const nodeA, forged = "kuryrnode-a", "kuryrnode-forged"
	must(t, admin.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeA}}))
	owner := v1alpha1.DPDKOwnerPod + "0f0f0f0f-1111-4222-8333-444444444444"
	kn := &v1alpha1.KuryrNode{ObjectMeta: metav1.ObjectMeta{Name: nodeA}}
	createServed(ctx, t, admin, kn)
	kn.Status.DPDKDevices = []v1alpha1.DPDKDevice{{PortID: "port-of-a-pod", MAC: "fa:16:3e:00:00:01", NetworkID: "net", SubnetID: "subnet",
		State: v1alpha1.DPDKDeviceInUse, Owner: owner, Unpooled: true}}
	must(t, admin.Status().Update(ctx, kn))

	cfgA, err := env.NodeBoundServiceAccountConfig(ctx, "kuryr-dpdk", "kuryr-daemon", "kuryr-daemon-kuryrnode-a", nodeA)
	must(t, err)
	a, err := client.New(cfgA, client.Options{Scheme: scheme})
	must(t, err)
	var list v1alpha1.KuryrNodeList
	if err := a.List(ctx, &list, client.MatchingFields{"metadata.name": nodeA}); err != nil || len(list.Items) != 1 {
		t.Fatalf("node A's daemon listing its KuryrNode: %d items, %v", len(list.Items), err)
	}

	// The writes, each on a fresh copy of the KuryrNode as the admin reads it.
	writes := []struct {
		what string
		do   func() error
	}{
		{"naming another owner of a device in its KuryrNode's status", func() error {
			k := read(ctx, t, admin, nodeA)
			k.Status.DPDKDevices[0].Owner = v1alpha1.DPDKOwnerPod + "attacker"
			return a.Status().Update(ctx, k)
		}},
		{"adding a device to its KuryrNode's status", func() error {
			k := read(ctx, t, admin, nodeA)
			k.Status.DPDKDevices = append(k.Status.DPDKDevices, v1alpha1.DPDKDevice{PortID: "port-forged", MAC: "fa:16:3e:00:00:02",
				NetworkID: "net", SubnetID: "subnet", State: v1alpha1.DPDKDeviceInUse, Owner: v1alpha1.DPDKOwnerPod + "attacker", Unpooled: true})
			return a.Status().Update(ctx, k)
		}},
		{"labelling its KuryrNode", func() error {
			k := read(ctx, t, admin, nodeA)
			k.Labels = map[string]string{"x": "y"}
			return a.Update(ctx, k)
		}},
		{"creating a KuryrNode", func() error {
			return a.Create(ctx, &v1alpha1.KuryrNode{ObjectMeta: metav1.ObjectMeta{Name: forged}})
		}},
		{"deleting its KuryrNode", func() error {
			return a.Delete(ctx, &v1alpha1.KuryrNode{ObjectMeta: metav1.ObjectMeta{Name: nodeA}})
		}},
	}
	for _, w := range writes {
		refused(t, "node A's daemon "+w.what+" (RBAC)", w.do(), "kuryr-daemon\" cannot")
	}

	// RBAC widened by mistake: the policy still refuses.
	const grant = "kuryr-daemon-kuryrnodes-test"
	must(t, admin.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: grant},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"kuryrnodes", "kuryrnodes/status"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}}}))
	must(t, admin.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: grant},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: grant},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "kuryr-dpdk", Name: "kuryr-daemon"}}}))
	t.Cleanup(func() {
		_ = admin.Delete(context.Background(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: grant}})
		_ = admin.Delete(context.Background(), &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: grant}})
	})
	// The grant is in force once a write is refused by the policy rather
	// than by RBAC (the authorizer's cache follows in a moment).
	var last error
	deadline := time.Now().Add(30 * time.Second)
	for {
		last = writes[0].do()
		if apierrors.IsForbidden(last) && strings.Contains(last.Error(), "kuryr-daemon-own-node") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, w := range writes {
		err := last
		if i > 0 {
			err = w.do()
		}
		refused(t, "node A's daemon "+w.what+" (RBAC granting it, admission)", err, "kuryr-daemon may only update the status of KuryrPods")
	}

	k := read(ctx, t, admin, nodeA)
	if len(k.Status.DPDKDevices) != 1 || k.Status.DPDKDevices[0].Owner != owner || len(k.Labels) != 0 || k.DeletionTimestamp != nil {
		t.Errorf("node A's KuryrNode after the refusals: labels %v, deleting %v, devices %+v", k.Labels, k.DeletionTimestamp, k.Status.DPDKDevices)
	}
	if err := admin.Get(ctx, types.NamespacedName{Name: forged}, &v1alpha1.KuryrNode{}); !apierrors.IsNotFound(err) {
		t.Errorf("KuryrNode %s after the refused create: %v, want not found", forged, err)
	}
}

// read gets KuryrNode name as c.
func read(ctx context.Context, t *testing.T, c client.Client, name string) *v1alpha1.KuryrNode {
	t.Helper()
	var k v1alpha1.KuryrNode
	must(t, c.Get(ctx, types.NamespacedName{Name: name}, &k))
	return &k
}
