package daemon

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestStatusWrittenFromTheInformersCopy: updateStatus writes a KuryrPod's
// status from the daemon's own copy (its informer's) without reading the
// KuryrPod from the API server, and falls back to a fresh read from the
// API server whenever that copy cannot settle it: a copy older than the
// KuryrPod (its write conflicts), a copy to which the change changes
// nothing (it may predate the interfaces the change is about), no copy
// at all. On the real API server; "the informer" is a client whose reads
// the test serves, the API server reads are counted.
func TestStatusWrittenFromTheInformersCopy(t *testing.T) {
	ctx := context.Background()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: scheme})
	must(t, err)
	uid := types.UID(fmt.Sprintf("3c1e5a7b-9d2f-4b6a-8e0c-1a2b3c4d5e%02d", seq.Add(1)%100))
	key := types.NamespacedName{Namespace: "default", Name: fmt.Sprintf("report-%d", seq.Add(1))}
	kp := &v1alpha1.KuryrPod{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace},
		Spec: v1alpha1.KuryrPodSpec{PodUID: uid, NodeName: "n", Interfaces: []v1alpha1.InterfaceRequest{
			{IfName: "eth0", Driver: v1alpha1.DriverNestedMACVLAN, SubnetID: "s-pod"}}}}
	must(t, c.Create(ctx, kp))
	kp.Status.Interfaces = []v1alpha1.InterfaceStatus{{IfName: "eth0", Driver: v1alpha1.DriverNestedMACVLAN, State: v1alpha1.StateActive}}
	must(t, c.Status().Update(ctx, kp))

	// informer serves the KuryrPod the test says, or none.
	var informer atomic.Pointer[v1alpha1.KuryrPod]
	cached := interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
			cp := informer.Load()
			if cp == nil {
				return fmt.Errorf("no copy of %s in the informer", k)
			}
			cp.DeepCopyInto(obj.(*v1alpha1.KuryrPod))
			return nil
		},
	})
	var reads atomic.Int32
	reader := interceptor.NewClient(c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, k client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			reads.Add(1)
			return c.Get(ctx, k, obj, opts...)
		},
	})
	d := &Daemon{client: cached, reader: reader}
	setState := func(s v1alpha1.InterfaceState) func(*v1alpha1.KuryrPodStatus) {
		return func(st *v1alpha1.KuryrPodStatus) {
			for i := range st.Interfaces {
				st.Interfaces[i].State = s
			}
		}
	}
	latest := func() *v1alpha1.KuryrPod {
		var cur v1alpha1.KuryrPod
		must(t, c.Get(ctx, key, &cur))
		return &cur
	}
	step := func(what string, copyOf *v1alpha1.KuryrPod, want v1alpha1.InterfaceState, wantReads int32) {
		t.Helper()
		informer.Store(copyOf)
		reads.Store(0)
		must(t, d.updateStatus(ctx, key, uid, setState(want)))
		if got := latest().Status.Interfaces[0].State; got != want {
			t.Errorf("%s: eth0 is %s after the write, want %s", what, got, want)
		}
		if got := reads.Load(); got != wantReads {
			t.Errorf("%s: %d reads from the API server, want %d", what, got, wantReads)
		}
	}

	step("the informer's copy is the latest", latest(), v1alpha1.StatePlugged, 0)
	old := latest()
	step("the informer's copy is the latest again", latest(), v1alpha1.StateActive, 0)
	step("the informer's copy is older than the KuryrPod", old, v1alpha1.StatePlugged, 1)
	// A copy from before the interface was Plugged: marking it Active again
	// changes nothing on it, yet the KuryrPod needs the change.
	stale := latest()
	stale.Status.Interfaces[0].State = v1alpha1.StateActive
	step("the change changes nothing on the informer's copy", stale, v1alpha1.StateActive, 1)
	step("no copy in the informer", nil, v1alpha1.StatePlugged, 1)

	// A call for an earlier pod of that name: its KuryrPod is gone, the
	// one by that name now is another pod's, and is left alone.
	informer.Store(latest())
	must(t, d.updateStatus(ctx, key, "an-earlier-pod", setState(v1alpha1.StateActive)))
	if got := latest().Status.Interfaces[0].State; got != v1alpha1.StatePlugged {
		t.Errorf("the KuryrPod of another pod was written: eth0 is %s", got)
	}
}

// TestUnpluggedReportLeavesAFailedPodsSummary: the DEL's report on a pod
// whose interfaces were rolled back (Failed, none Plugged) writes nothing:
// its summary still says why they failed, on the real API server.
func TestUnpluggedReportLeavesAFailedPodsSummary(t *testing.T) {
	ctx := context.Background()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: scheme})
	must(t, err)
	key := types.NamespacedName{Namespace: "default", Name: fmt.Sprintf("failed-%d", seq.Add(1))}
	kp := &v1alpha1.KuryrPod{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace},
		Spec: v1alpha1.KuryrPodSpec{PodUID: "u-failed", NodeName: "n", Interfaces: []v1alpha1.InterfaceRequest{
			{IfName: "eth0", Driver: v1alpha1.DriverNestedMACVLAN, SubnetID: "s-pod"}}}}
	must(t, c.Create(ctx, kp))
	kp.Status.Summary = "Failed"
	kp.Status.Interfaces = []v1alpha1.InterfaceStatus{{IfName: "eth0", Driver: v1alpha1.DriverNestedMACVLAN, State: v1alpha1.StateFailed,
		Message: "rolled back: quota exceeded"}}
	must(t, c.Status().Update(ctx, kp))
	d := &Daemon{client: c, reader: c}
	must(t, d.recordUnplugged(ctx, key, "", []string{"eth0"}))
	var got v1alpha1.KuryrPod
	must(t, c.Get(ctx, key, &got))
	if got.Status.Summary != "Failed" || got.ResourceVersion != kp.ResourceVersion {
		t.Errorf("after the DEL's report the failed pod's summary is %q (version %s, was %s), want it left Failed",
			got.Status.Summary, got.ResourceVersion, kp.ResourceVersion)
	}
}
