package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// TestRequestedMACOfTheNodeIsRefused: a pod that asks (networks annotation
// "mac") for the MAC of its node's own port, or for the MAC of a port
// already attached to its node (another pod's DPDK port, on another
// network, which Neutron alone would allow), gets no port: Ready=False
// InterfacesFailed and an Event saying the MAC is one of its node's ports,
// without naming the port (it may be another tenant's: its ID goes to the
// controller's log only). The
// simulated cloud checks MACs per network only, as Neutron does, so the
// refusal is the controller's.
func TestRequestedMACOfTheNodeIsRefused(t *testing.T) {
	f := newFixture(t, 1)
	f.opts.Primary = false
	f.standardNADs()
	// A second DPDK network, so that the second attack is not refused by
	// Neutron's per-network MAC check.
	f.createNAD("dataplane2", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dataplane2","type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q}`, f.mgmtNet.ID), nil)
	f.startController()
	node := f.ns + "-node-0"
	srv := f.servers[node]

	f.createPod("first", node, "dataplane")
	kp := f.waitReady("first")
	firstMAC := kp.Status.Interfaces[0].MAC

	cases := []struct{ pod, networks, portID string }{
		{"node-mac", fmt.Sprintf(`[{"name":"dataplane","mac":%q}]`, strings.ToUpper(srv.ParentPort.MACAddress)), srv.ParentPort.ID},
		{"attached-mac", fmt.Sprintf(`[{"name":"dataplane2","mac":%q}]`, firstMAC), kp.Status.Interfaces[0].PortID},
	}
	for _, c := range cases {
		f.createPod(c.pod, node, c.networks)
	}
	for _, c := range cases {
		want := "is the MAC of a port of node " + node
		f.eventually(20*time.Second, c.pod+" refused", func() (bool, string) {
			kp, err := f.kuryrPod(c.pod)
			if err != nil {
				return false, err.Error()
			}
			cond := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady)
			if cond == nil || cond.Status != "False" || cond.Reason != reasonFailed || !strings.Contains(cond.Message, want) {
				return false, fmt.Sprintf("conditions %+v", kp.Status.Conditions)
			}
			if leaked := fmt.Sprintf("%+v", kp.Status); strings.Contains(leaked, c.portID) {
				t.Fatalf("%s: the KuryrPod status names port %s, not the pod's: %s", c.pod, c.portID, leaked)
			}
			evs := f.events(c.pod)
			if strings.Contains(strings.Join(evs, " "), c.portID) {
				t.Fatalf("%s: an Event names port %s, not the pod's: %v", c.pod, c.portID, evs)
			}
			return slices.ContainsFunc(evs, func(e string) bool { return strings.Contains(e, want) }), fmt.Sprintf("events %v", evs)
		})
	}
	// No port of the cloud carries either MAC twice.
	for _, mac := range []string{srv.ParentPort.MACAddress, firstMAC} {
		n := 0
		for _, p := range f.sim.Ports() {
			if strings.EqualFold(p.MACAddress, mac) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d ports have MAC %s, want 1", n, mac)
		}
	}
	for _, p := range []string{"first", "node-mac", "attached-mac"} {
		f.deletePod(p)
		f.waitGone(p)
	}
	if left := f.leftovers(); left != "" {
		t.Fatalf("after delete the cloud still holds: %s", left)
	}
}
