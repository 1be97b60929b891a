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
// still knows the write as the controller's own); forget drops both.
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
	write(&w, "5", kp("u1", "6", "1/1 active"), now)
	w.forget("u1")
	if got := w.fresher(kp("u1", "5", "0/1 active"), now); got.Status.Summary != "0/1 active" {
		t.Errorf("after forget read back %q, want the cache's", got.Status.Summary)
	}
	write(&w, "5", kp("u1", "6", "1/1 active"), now)
	write(&w, "8", &v1alpha1.KuryrPod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other", UID: "u3", ResourceVersion: "9"}}, now.Add(writtenTTL+time.Second))
	if w.m["u1"].kp != nil || w.m["u3"].kp == nil {
		t.Errorf("after a write past writtenTTL of the first, written copies: u1 %v, u3 %v; want only u3's (expired copies go)", w.m["u1"].kp != nil, w.m["u3"].kp != nil)
	}
	if !w.mine(kp("u1", "6", "1/1 active")) {
		t.Error("an expired written copy took the status' digest with it: the watch would take the controller's own write for another's")
	}
}
