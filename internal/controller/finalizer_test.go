package controller

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestPodFinalizerKeepsOthersFinalizers: the controller adds and removes
// its finalizer of a Pod through a copy read before another controller
// added its own (a cache that has not seen that write yet), against the
// real API server; the other controller's finalizer stays both times, and
// ours is added once and then gone.
func TestPodFinalizerKeepsOthersFinalizers(t *testing.T) {
	f := newFixture(t, 1)
	const other = "example.com/other-controller"
	f.createPod("shared", f.ns+"-node-0", "")
	key := types.NamespacedName{Namespace: f.ns, Name: "shared"}
	r := &PodReconciler{client: f.c}

	read := func() *corev1.Pod {
		t.Helper()
		var p corev1.Pod
		must(t, f.c.Get(f.ctx, key, &p))
		return &p
	}
	stale := read()
	cur := read()
	cur.Finalizers = append(cur.Finalizers, other)
	must(t, f.c.Update(f.ctx, cur))

	must(t, r.setPodFinalizer(f.ctx, stale, true))
	must(t, r.setPodFinalizer(f.ctx, read(), true)) // again: no second copy
	if got := read().Finalizers; !sameSet(got, other, v1alpha1.Finalizer) {
		t.Fatalf("after adding ours through a stale copy, finalizers %v, want %s and %s once each", got, other, v1alpha1.Finalizer)
	}

	stale = read()
	cur = read()
	cur.Finalizers = append(cur.Finalizers, other+"-2")
	must(t, f.c.Update(f.ctx, cur))
	must(t, r.setPodFinalizer(f.ctx, stale, false))
	if got := read().Finalizers; !sameSet(got, other, other+"-2") {
		t.Fatalf("after removing ours through a stale copy, finalizers %v, want %s and %s-2", got, other, other)
	}

	cur = read()
	cur.Finalizers = nil
	must(t, f.c.Update(f.ctx, cur))
}

// sameSet says got holds exactly want, in any order, each once.
func sameSet(got []string, want ...string) bool {
	return slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)))
}
