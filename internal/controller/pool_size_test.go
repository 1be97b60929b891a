package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// annotateNode sets annotation key of node to value.
func (f *fixture) annotateNode(node, key, value string) {
	f.t.Helper()
	var n corev1.Node
	must(f.t, f.c.Get(f.ctx, types.NamespacedName{Name: node}, &n))
	before := n.DeepCopy()
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[key] = value
	must(f.t, f.c.Patch(f.ctx, &n, client.MergeFrom(before)))
}

// TestNodePoolSize: each driver's annotation sizes that driver's pools on
// the node over the options ("0,0" turns them off there), in one shape,
// each bounded by what the node can hold (hot-plug slots for nested-dpdk,
// VLAN IDs for the others); another driver's annotation changes nothing;
// a value that is not a size is an error naming the node, the annotation
// and the shape, and the options hold.
func TestNodePoolSize(t *testing.T) {
	t.Parallel()
	def := PoolSize{Min: 2, Max: 4, Batch: 3}
	for _, d := range []v1alpha1.Driver{v1alpha1.DriverNestedVLAN, v1alpha1.DriverNestedMACVLAN, v1alpha1.DriverNestedDPDK} {
		name, limit := poolSizeAnnotation(d)
		if name == "" {
			t.Fatalf("driver %s has no pool-size annotation", d)
		}
		for _, c := range []struct {
			annotation string
			want       PoolSize
			err        string
		}{
			{"", def, ""},
			{"1,8", PoolSize{Min: 1, Max: 8, Batch: 3}, ""},
			{"1,2", PoolSize{Min: 1, Max: 2, Batch: 2}, ""},
			{" 0 , 6 , 6 ", PoolSize{Min: 0, Max: 6, Batch: 6}, ""},
			{"0,0", PoolSize{}, ""},
			{fmt.Sprintf("1,%d", limit), PoolSize{Min: 1, Max: limit, Batch: 3}, ""},
			{"5,2", def, "min 5 and max 2"},
			{"1,4,9", def, "batch 9 must be within 1..max (4)"},
			{"4", def, "two or three numbers"},
			{"1,2,3,4", def, "two or three numbers"},
			{"-1,4", def, fmt.Sprintf("each a number in 0..%d", limit)},
			{fmt.Sprintf("1,%d", limit+1), def, fmt.Sprintf("each a number in 0..%d", limit)},
			{"a,b", def, "each a number"},
		} {
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
			if c.annotation != "" {
				n.Annotations = map[string]string{name: c.annotation}
			}
			got, err := nodePoolSize(n, d, def)
			if got != c.want || (c.err == "") != (err == nil) ||
				(err != nil && (!strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "node-a") ||
					!strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), `"min,max" or "min,max,batch"`))) {
				t.Errorf("driver %s, annotation %s=%q: %+v, %v; want %+v, error containing %q", d, name, c.annotation, got, err, c.want, c.err)
			}
		}
	}
	// One driver's annotation is not another's.
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Annotations: map[string]string{v1alpha1.VLANPoolSizeAnnotation: "1,9"}}}
	for _, d := range []v1alpha1.Driver{v1alpha1.DriverNestedMACVLAN, v1alpha1.DriverNestedDPDK} {
		if got, err := nodePoolSize(n, d, def); got != def || err != nil {
			t.Errorf("driver %s on a node with only %s: %+v, %v; want the options' %+v", d, v1alpha1.VLANPoolSizeAnnotation, got, err, def)
		}
	}
	// The DPDK pools' slot bound is below the VLAN bound.
	if _, dpdk := poolSizeAnnotation(v1alpha1.DriverNestedDPDK); dpdk != maxHotplugSlots {
		t.Errorf("nested-dpdk pool sizes bounded by %d, want the hot-plug slots' %d", dpdk, maxHotplugSlots)
	}
}

// TestPoolSizeAnnotationPerNode: with nested-vlan pools of min 1, max 1 in
// the options, a node annotated kuryr-dpdk.io/vlan-pool-size "2,3" gets a
// pool of target 2 and max 3 while the other node's stays at 1; a bad
// value on it is one InvalidPoolSize Warning Event on that Node naming it,
// the annotation and the shape of a size, and its pool goes back to the
// options' size (its ready ports past max 1 released).
func TestPoolSizeAnnotationPerNode(t *testing.T) {
	f := newFixture(t, 2)
	big, plain := f.ns+"-node-0", f.ns+"-node-1"
	f.opts.Pools.NestedVLAN = PoolSize{Min: 1, Max: 1, Batch: 1}
	f.annotateNode(big, v1alpha1.VLANPoolSizeAnnotation, "2,3")
	f.startController()
	f.createPod("on-big", big, "")
	f.createPod("on-plain", plain, "")
	f.waitReady("on-big")
	f.waitReady("on-plain")
	f.waitPoolReady(big, 2)
	f.waitPoolReady(plain, 1)
	if st, s := f.pool(big); st.Target != 2 || st.Max != 3 {
		t.Fatalf("pool of the annotated node %s, want target 2 and max 3", s)
	}
	if st, s := f.pool(plain); st.Target != 1 || st.Max != 1 {
		t.Fatalf("pool of the other node %s, want the options' target 1 and max 1", s)
	}

	f.annotateNode(big, v1alpha1.VLANPoolSizeAnnotation, "2")
	f.eventually(20*time.Second, "one InvalidPoolSize Event on the node and the options' size", func() (bool, string) {
		all, err := f.nodeEvents(big)
		if err != nil {
			return false, err.Error()
		}
		evs := slices.DeleteFunc(slices.Clone(all), func(e string) bool { return !strings.HasPrefix(e, reasonBadPoolSize+":") })
		st, s := f.pool(big)
		return len(evs) == 1 && strings.Contains(evs[0], "node "+big) && strings.Contains(evs[0], v1alpha1.VLANPoolSizeAnnotation+`="2"`) &&
				strings.Contains(evs[0], `"min,max" or "min,max,batch"`) && st.Target == 1 && st.Max == 1 && st.Ready == 1,
			fmt.Sprintf("events %v, pool %s", all, s)
	})
	if evs, err := f.nodeEvents(plain); err != nil || slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, reasonBadPoolSize+":") }) {
		t.Fatalf("events of the other node %v (%v): it has no annotation", evs, err)
	}
}
