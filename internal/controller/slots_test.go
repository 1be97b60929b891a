package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// TestHotplugSlotsNeverPlannedPast: a node annotated with 2 hot-plug slots
// (overriding --hotplug-slots 5) gets two DPDK pods attached; the third
// is not attached (Nova is not asked), waits with a message and a
// NoHotplugSlot Event naming the node and the limit, and the KuryrNode
// shows 2 used, 0 free; once a pod goes, its slot is free and the third
// pod is attached.
func TestHotplugSlotsNeverPlannedPast(t *testing.T) {
	f := newFixture(t, 1)
	node := f.ns + "-node-0"
	f.standardNADs()
	var n corev1.Node
	must(t, f.c.Get(f.ctx, types.NamespacedName{Name: node}, &n))
	n.Annotations = map[string]string{v1alpha1.HotplugSlotsAnnotation: "2"}
	must(t, f.c.Update(f.ctx, &n))
	f.opts.HotplugSlots = 5
	f.startController()

	f.createPod("p0", node, "dataplane")
	f.createPod("p1", node, "dataplane")
	f.waitReady("p0")
	f.waitReady("p1")
	f.createPod("p2", node, "dataplane")
	want := fmt.Sprintf("node %s has no free hot-plug slot: all 2 in use", node)
	f.eventually(20*time.Second, "p2 waiting for a hot-plug slot", func() (bool, string) {
		kp, err := f.kuryrPod("p2")
		if err != nil {
			return false, err.Error()
		}
		st := findStatus(&kp.Status, "net1")
		evs := f.events("p2")
		return st != nil && strings.Contains(st.Message, want) && !meta.IsStatusConditionTrue(kp.Status.Conditions, v1alpha1.ConditionReady) &&
				slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, reasonNoSlot+":") && strings.Contains(e, want) }),
			fmt.Sprintf("status %+v, events %v", kp.Status, evs)
	})
	if a := f.sim.Count("nova.interfaces.attach"); a != 2 {
		t.Fatalf("Nova was asked for %d attaches, want 2 (none past the node's slots)", a)
	}
	slots := func(want v1alpha1.HotplugSlots) {
		t.Helper()
		f.eventually(20*time.Second, fmt.Sprintf("KuryrNode hot-plug slots %+v", want), func() (bool, string) {
			var kn v1alpha1.KuryrNode
			if err := f.c.Get(f.ctx, types.NamespacedName{Name: node}, &kn); err != nil {
				return false, err.Error()
			}
			return kn.Status.HotplugSlots != nil && *kn.Status.HotplugSlots == want, fmt.Sprintf("%+v", kn.Status.HotplugSlots)
		})
	}
	slots(v1alpha1.HotplugSlots{Limit: 2, Used: 2, Free: 0})

	f.deletePod("p0")
	f.waitGone("p0")
	f.waitReady("p2")
	if a := f.sim.Count("nova.interfaces.attach"); a != 3 {
		t.Errorf("Nova was asked for %d attaches, want 3", a)
	}
	slots(v1alpha1.HotplugSlots{Limit: 2, Used: 2, Free: 0})
	f.deletePod("p1")
	f.waitGone("p1")
	slots(v1alpha1.HotplugSlots{Limit: 2, Used: 1, Free: 1})
}

// TestHotplugLimit: the node's annotation wins over the option; a value
// that is not a number of slots is an error naming the node and the
// annotation, and the option holds.
func TestHotplugLimit(t *testing.T) {
	for _, c := range []struct {
		annotation string
		want       int
		err        string
	}{
		{"", 4, ""},
		{"0", 0, ""},
		{"12", 12, ""},
		{"-1", 4, `annotation kuryr-dpdk.io/hotplug-slots="-1" is not a number of slots in 0..256`},
		{"257", 4, "not a number of slots"},
		{"two", 4, "not a number of slots"},
	} {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
		if c.annotation != "" {
			n.Annotations = map[string]string{v1alpha1.HotplugSlotsAnnotation: c.annotation}
		}
		got, err := hotplugLimit(n, 4)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "node-a"))) {
			t.Errorf("annotation %q: %d, %v; want %d, error containing %q", c.annotation, got, err, c.want, c.err)
		}
	}
}

// noneAttached is a PortReader whose server shows no port attached: the
// Nova attaches the test reserves for are still under way.
type noneAttached struct{ lists int }

func (a *noneAttached) GetPort(context.Context, string) (openstack.Port, error) {
	return openstack.Port{}, openstack.ErrNotFound
}

func (a *noneAttached) ListPorts(context.Context, openstack.PortFilter) ([]openstack.Port, error) {
	a.lists++
	return nil, nil
}

// TestHotplugSlotsKeepAttachesUnderWay: two slots reserved for attaches
// that Nova has not answered yet (Neutron shows neither on the server)
// stay counted when a third reservation finds the VM full and reads the
// count again from Neutron: the third is refused. A slot freed (an attach
// that failed) takes the next one.
func TestHotplugSlotsKeepAttachesUnderWay(t *testing.T) {
	t.Parallel()
	cloud := &noneAttached{}
	h := newHotplugSlots(cloud)
	node := nodeInfo{Name: "n1", ServerID: "s1", HotplugSlots: 2}
	ctx := context.Background()
	for _, id := range []string{"p1", "p2"} {
		if err := h.reserve(ctx, node, id); err != nil {
			t.Fatalf("reserve %s: %v", id, err)
		}
	}
	var full *errNoHotplugSlot
	if err := h.reserve(ctx, node, "p3"); !errors.As(err, &full) {
		t.Fatalf("a third attach on a VM of 2 slots with 2 under way: %v, want errNoHotplugSlot", err)
	}
	if cloud.lists < 2 {
		t.Fatalf("the count was read from Neutron %d times: the full VM's reload was not exercised", cloud.lists)
	}
	h.attached("s1", "p1")
	h.free("s1", "p2") // p2's attach failed
	if err := h.reserve(ctx, node, "p3"); err != nil {
		t.Fatalf("p3 after p2's slot was freed: %v", err)
	}
}
