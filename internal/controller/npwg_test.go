package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// TestNPWGSelectionAndVNFOptions: every address of a selection element's
// ips is on the port and in the status (a DPDK one's too: the port carries
// them for the application); default-route moves the pod's default route
// from eth0 to the named gateway; a NAD's portSecurityEnabled false and
// allowedAddressPairs are on the port Neutron made; a default-route gateway
// off the port's subnets fails the pod with a message naming the field.
func TestNPWGSelectionAndVNFOptions(t *testing.T) {
	f := newFixture(t, 1)
	f.standardNADs()
	f.createNAD("dp-open", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dp-open","type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q,"portSecurityEnabled":false}`, f.dpNet.ID), nil)
	f.createNAD("fwd", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"fwd","type":"kuryr-cni","driver":"nested-vlan","subnetId":%q,"securityGroups":[%q],`+
		`"allowedAddressPairs":[{"ipAddress":"192.168.50.0/24"},{"ipAddress":"192.168.51.1","macAddress":"fa:16:3e:aa:bb:cc"}]}`, f.dpNet.ID, f.sg), nil)
	f.startController()
	node := f.ns + "-node-0"
	f.createPod("vnf", node, `[{"name":"mgmt","ips":["10.2.0.50/24","10.2.0.51"],"default-route":["10.2.0.254"]},`+
		`{"name":"dp-open","ips":["10.3.0.60","10.3.0.61"]},{"name":"fwd"}]`)
	kp := f.waitReady("vnf")
	got := map[string]v1alpha1.InterfaceStatus{}
	for _, s := range kp.Status.Interfaces {
		got[s.IfName] = s
	}
	port := func(ifName string) cloudsim.Port {
		t.Helper()
		p, ok := f.sim.Port(got[ifName].PortID)
		if !ok {
			t.Fatalf("%s: port %q not in the cloud", ifName, got[ifName].PortID)
		}
		return p
	}
	addrs := func(p cloudsim.Port) []string {
		var out []string
		for _, fi := range p.FixedIPs {
			out = append(out, fi.IPAddress)
		}
		return out
	}

	if rs := got["eth0"].Routes; slices.ContainsFunc(rs, func(r v1alpha1.Route) bool { return r.Dst == "0.0.0.0/0" }) {
		t.Errorf("eth0 routes %+v keep a default route though net1 asked for it", rs)
	}
	mgmt := got["net1"]
	if want := []string{"10.2.0.50/24", "10.2.0.51/24"}; !slices.Equal(mgmt.IPs, want) {
		t.Errorf("net1 IPs %v, want %v", mgmt.IPs, want)
	}
	if a := addrs(port("net1")); !slices.Equal(a, []string{"10.2.0.50", "10.2.0.51"}) {
		t.Errorf("net1's port has fixed IPs %v", a)
	}
	if !slices.Contains(mgmt.Routes, v1alpha1.Route{Dst: "0.0.0.0/0", Gateway: "10.2.0.254"}) || mgmt.Gateway != "10.2.0.254" {
		t.Errorf("net1 gateway %q routes %+v, want the default route via the named 10.2.0.254", mgmt.Gateway, mgmt.Routes)
	}

	dp, dpPort := got["net2"], port("net2")
	if want := []string{"10.3.0.60/24", "10.3.0.61/24"}; !slices.Equal(dp.IPs, want) {
		t.Errorf("net2 (DPDK) IPs %v, want %v", dp.IPs, want)
	}
	if a := addrs(dpPort); !slices.Equal(a, []string{"10.3.0.60", "10.3.0.61"}) {
		t.Errorf("net2's port has fixed IPs %v", a)
	}
	if !dpPort.NoPortSecurity || len(dpPort.SecurityGroups) != 0 {
		t.Errorf("net2's port: port security off %v, security groups %v; want off and none", dpPort.NoPortSecurity, dpPort.SecurityGroups)
	}

	fwd := port("net3")
	wantPairs := []cloudsim.AddressPair{{IPAddress: "192.168.50.0/24", MACAddress: fwd.MACAddress}, {IPAddress: "192.168.51.1", MACAddress: "fa:16:3e:aa:bb:cc"}}
	if fwd.NoPortSecurity || !slices.Equal(fwd.AllowedAddressPairs, wantPairs) || !slices.Equal(fwd.SecurityGroups, []string{f.sg}) {
		t.Errorf("net3's port: port security off %v, pairs %+v (want %+v), groups %v", fwd.NoPortSecurity, fwd.AllowedAddressPairs, wantPairs, fwd.SecurityGroups)
	}

	// A gateway the interface cannot reach: terminal, named, nothing left.
	f.createPod("far", node, `[{"name":"mgmt","default-route":["10.9.9.9"]}]`)
	want := "default-route[0] 10.9.9.9 is not on a subnet of port"
	f.eventually(20*time.Second, "pod far failed", func() (bool, string) {
		kp, err := f.kuryrPod("far")
		if err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionReady)
		return cond != nil && cond.Reason == reasonFailed && strings.Contains(cond.Message, want), fmt.Sprintf("conditions %+v", kp.Status.Conditions)
	})

	for _, name := range []string{"vnf", "far"} {
		f.deletePod(name)
		f.waitGone(name)
	}
	if left := f.leftovers(); left != "" {
		t.Fatalf("after delete the cloud still holds: %s", left)
	}
}
