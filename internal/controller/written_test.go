package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestWrittenStatusStandsInForTheStaleCache: a KuryrPod whose status the
// controller wrote over version "5" is read back as written while the
// cache still holds version 5 of the same object; once the cache holds
// anything else (the write, or a later one by the daemon), or another
// object of that name, or writtenTTL has passed, the cache's copy is used
// and the written copy goes, while the status' digest stays (the watch
// still knows the write as the controller's own); forget drops both. The
// written copy is held without managedFields, as the cache holds its own.
func TestWrittenStatusStandsInForTheStaleCache(t *testing.T) {
	// write records kp as writeStatus does: before it is sent, and once
	// the API server answered.
	write := func(w *ownWrites, before string, kp *v1alpha1.KuryrPod, at time.Time) {
		w.sending(kp.UID, &kp.Status)
		w.written(before, kp, at)
	}
	t.Parallel()
	now := time.Unix(1000, 0)
	kp := func(uid types.UID, rv string, summary string) *v1alpha1.KuryrPod {
		return &v1alpha1.KuryrPod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: uid, ResourceVersion: rv},
			Status:     v1alpha1.KuryrPodStatus{Summary: summary},
		}
	}
	for _, c := range []struct {
		name   string
		cached *v1alpha1.KuryrPod
		at     time.Time
		want   string // the summary read back
		kept   bool   // the record stays for the next read
	}{
		{"cache still at the replaced version", kp("u1", "5", "0/1 active"), now, "1/1 active", true},
		{"cache shows the write", kp("u1", "6", "1/1 active"), now, "1/1 active", false},
		{"cache shows a later write by someone else", kp("u1", "7", "daemon's"), now, "daemon's", false},
		{"another object of that name (the old one's copy is not its)", kp("u2", "5", "new pod's"), now, "new pod's", true},
		{"record past writtenTTL", kp("u1", "5", "0/1 active"), now.Add(writtenTTL + time.Second), "0/1 active", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var w ownWrites
			write(&w, "5", kp("u1", "6", "1/1 active"), now)
			got := w.fresher(c.cached, c.at)
			if got.Status.Summary != c.want {
				t.Fatalf("read back %q (version %s), want %q", got.Status.Summary, got.ResourceVersion, c.want)
			}
			if kept := w.m["u1"].kp != nil; kept != c.kept {
				t.Errorf("written copy kept %v after the read, want %v", kept, c.kept)
			}
			if !w.mine(kp("u1", "6", "1/1 active")) {
				t.Error("the written status is no longer known as the controller's own after the read")
			}
		})
	}
	var w ownWrites
	withFields := kp("u1", "6", "1/1 active")
	withFields.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kuryr-controller", FieldsV1: metav1.NewFieldsV1(`{"f:status":{}}`)}}
	write(&w, "5", withFields, now)
	if got := w.fresher(kp("u1", "5", "0/1 active"), now); got.Status.Summary != "1/1 active" || got.ManagedFields != nil {
		t.Errorf("written copy read back with summary %q and managedFields %v; want the write's status without managedFields, as the cache trims them",
			got.Status.Summary, got.ManagedFields)
	}
	if withFields.ManagedFields == nil {
		t.Error("recording the write took the managedFields off the caller's object")
	}
	w.forget("u1")
	if got := w.fresher(kp("u1", "5", "0/1 active"), now); got.Status.Summary != "0/1 active" {
		t.Errorf("after forget read back %q, want the cache's", got.Status.Summary)
	}
	write(&w, "5", kp("u1", "6", "1/1 active"), now)
	write(&w, "8", writtenKP("u3"), now.Add(writtenTTL+time.Second))
	if w.m["u1"].kp != nil || w.m["u3"].kp == nil {
		t.Errorf("after a write past writtenTTL of the first, written copies: u1 %v, u3 %v; want only u3's (expired copies go)", w.m["u1"].kp != nil, w.m["u3"].kp != nil)
	}
	if !w.mine(kp("u1", "6", "1/1 active")) {
		t.Error("an expired written copy took the status' digest with it: the watch would take the controller's own write for another's")
	}
}

// TestWrittenCopiesSweptOncePerTTL: the written copies past writtenTTL are
// dropped by the first write at least writtenTTL after the last sweep,
// not by every write: a copy that expires between two sweeps is still
// held by the writes in between (the map, one entry per live KuryrPod, is
// not walked), is never read back, and the next sweep drops the expired
// copies; the digests stay.
func TestWrittenCopiesSweptOncePerTTL(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	var w ownWrites
	write := func(uid types.UID, at time.Duration) {
		w.sending(uid, &v1alpha1.KuryrPodStatus{Summary: string(uid)})
		w.written("8", writtenKP(uid), now.Add(at))
	}
	held := func(uid types.UID) bool { return w.m[uid].kp != nil }
	write("a", 0)                          // the first write sweeps (nothing to drop)
	write("b", writtenTTL/2)               // no sweep: writtenTTL/2 since the last
	write("c", writtenTTL+time.Second)     // sweep: a (writtenTTL+1s old) goes, b stays
	write("d", writtenTTL*3/2+time.Second) // no sweep: writtenTTL/2 since the last
	if held("a") || !held("b") || !held("c") || !held("d") {
		t.Fatalf("after the second sweep and a write written copies a %v, b %v, c %v, d %v; want b, c and d (a expired)",
			held("a"), held("b"), held("c"), held("d"))
	}
	// b expired at 1.5 writtenTTL; the next sweep may go at 2 writtenTTL+1s.
	write("e", writtenTTL*3/2+2*time.Second)
	if !held("b") {
		t.Fatal("a write writtenTTL/2 after the last sweep walked the written copies (b, expired since, is gone): want one sweep per writtenTTL")
	}
	if got := w.fresher(&v1alpha1.KuryrPod{ObjectMeta: metav1.ObjectMeta{UID: "b", ResourceVersion: "8"}}, now.Add(writtenTTL*3/2+2*time.Second)); got.Status.Summary != "" {
		t.Errorf("an expired copy held until the next sweep was read back (%q) in place of the cache's", got.Status.Summary)
	}
	write("f", 2*writtenTTL+2*time.Second) // sweep: c (writtenTTL+1s old) goes
	if held("c") || !held("d") || !held("e") || !held("f") {
		t.Errorf("after the third sweep written copies c %v, d %v, e %v, f %v; want d, e and f (c expired)", held("c"), held("d"), held("e"), held("f"))
	}
	for _, uid := range []types.UID{"a", "b", "c", "d", "e", "f"} {
		if !w.mine(&v1alpha1.KuryrPod{ObjectMeta: metav1.ObjectMeta{UID: uid}, Status: v1alpha1.KuryrPodStatus{Summary: string(uid)}}) {
			t.Errorf("the sweeps took %s's digest with its copy", uid)
		}
	}
}

// writtenKP is a KuryrPod with uid at version "9", as written by the tests
// (over version "8").
func writtenKP(uid types.UID) *v1alpha1.KuryrPod {
	return &v1alpha1.KuryrPod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other", UID: uid, ResourceVersion: "9"}}
}
