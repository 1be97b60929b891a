package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// TestPublicText: the cloud's own text and private details are replaced,
// however deep they are wrapped or joined; the controller's words around
// them stay.
func TestPublicText(t *testing.T) {
	t.Parallel()
	neutron := &openstack.Error{Op: "create port", Status: 409, Type: "PortInUse",
		Message: "Unable to complete operation on port 6f1e-other-tenant for network 9a2b-other. Port already has an attached device srv-77."}
	noStatus := &openstack.Error{Op: "attach interface", Message: "cancelled: context canceled at https://nova.internal:8774"}
	mac := private("interface net1: requested mac is the MAC of a port of node n1", errors.New("interface net1: requested mac is the MAC of port p-secret of node n1"))
	for _, tc := range []struct {
		name        string
		err         error
		want        string
		mustNotHave []string
	}{
		{"neutron, wrapped twice", terminal(fmt.Errorf("interface net1: %w", fmt.Errorf("create port for interface net1 on subnet s1: %w", neutron))),
			"interface net1: create port for interface net1 on subnet s1: create port: the cloud answered HTTP 409 PortInUse",
			[]string{"6f1e-other-tenant", "9a2b-other", "srv-77"}},
		{"no answer", fmt.Errorf("interface eth0: %w", noStatus), "interface eth0: attach interface: failed (details in the controller's log)",
			[]string{"nova.internal"}},
		{"private", terminal(mac), "interface net1: requested mac is the MAC of a port of node n1", []string{"p-secret"}},
		{"joined", errors.Join(fmt.Errorf("interface a: %w", neutron), fmt.Errorf("interface b: %w", mac)),
			"interface a: create port: the cloud answered HTTP 409 PortInUse\ninterface b: interface net1: requested mac is the MAC of a port of node n1",
			[]string{"6f1e", "p-secret"}},
		{"plain", errors.New("subnet s1 of interface net1: not found"), "subnet s1 of interface net1: not found", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := publicText(tc.err)
			if got != tc.want {
				t.Errorf("publicText = %q, want %q", got, tc.want)
			}
			for _, s := range tc.mustNotHave {
				if strings.Contains(got, s) {
					t.Errorf("publicText %q leaks %q", got, s)
				}
			}
		})
	}
}

// TestCloudErrorTextStaysInTheLog: a pod asking for an IP another pod
// already has gets Neutron's 409 (retried: the pod stays pending); its
// Ready condition and interface status say which call failed and how (HTTP
// 409 IpAddressAlreadyAllocated), and neither they nor its Events carry
// Neutron's own text.
func TestCloudErrorTextStaysInTheLog(t *testing.T) {
	f := newFixture(t, 1)
	f.standardNADs()
	f.startController()
	node := f.ns + "-node-0"
	f.createPod("first", node, "mgmt")
	kp := f.waitReady("first")
	var ip string
	for _, s := range kp.Status.Interfaces {
		if s.IfName == "net1" {
			ip = s.IPs[0]
		}
	}
	f.createPod("second", node, fmt.Sprintf(`[{"name":"mgmt","ips":[%q]}]`, ip))
	want := "HTTP 409 IpAddressAlreadyAllocated"
	f.eventually(20*time.Second, "second refused by the cloud", func() (bool, string) {
		kp, err := f.kuryrPod("second")
		if err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady)
		net1 := findStatus(&kp.Status, "net1")
		return c != nil && c.Status == "False" && strings.Contains(c.Message, want) && net1 != nil && strings.Contains(net1.Message, want),
			fmt.Sprintf("%+v", kp.Status)
	})
	kp, err := f.kuryrPod("second")
	must(t, err)
	seen := fmt.Sprintf("%+v %s", kp.Status, strings.Join(f.events("second"), " "))
	if strings.Contains(seen, "already allocated in subnet") {
		t.Fatalf("Neutron's own text reached the tenant: %s", seen)
	}
}
