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
// and the record goes.
func TestWrittenStatusStandsInForTheStaleCache(t *testing.T) {
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
		{"another object of that name", kp("u2", "5", "new pod's"), now, "new pod's", false},
		{"record past writtenTTL", kp("u1", "5", "0/1 active"), now.Add(writtenTTL + time.Second), "0/1 active", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var w writtenStatuses
			w.put("5", kp("u1", "6", "1/1 active"), now)
			got := w.fresher(c.cached, c.at)
			if got.Status.Summary != c.want {
				t.Fatalf("read back %q (version %s), want %q", got.Status.Summary, got.ResourceVersion, c.want)
			}
			if _, kept := w.m[types.NamespacedName{Namespace: "ns", Name: "p"}]; kept != c.kept {
				t.Errorf("record kept %v after the read, want %v", kept, c.kept)
			}
		})
	}
	var w writtenStatuses
	w.put("5", kp("u1", "6", "1/1 active"), now)
	w.forget(types.NamespacedName{Namespace: "ns", Name: "p"})
	if got := w.fresher(kp("u1", "5", "0/1 active"), now); got.Status.Summary != "0/1 active" {
		t.Errorf("after forget read back %q, want the cache's", got.Status.Summary)
	}
	w.put("5", kp("u1", "6", "1/1 active"), now)
	w.put("8", &v1alpha1.KuryrPod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other", UID: "u3", ResourceVersion: "9"}}, now.Add(writtenTTL+time.Second))
	if len(w.m) != 1 {
		t.Errorf("%d records after a put past writtenTTL of the first, want 1 (expired records go)", len(w.m))
	}
}
