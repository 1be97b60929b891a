package openstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// contractTarget is a cloud the contract suite runs against: the simulated
// cloud, or a real Neutron.
type contractTarget struct {
	client *Client
	// project goes in the bodies of setup calls (noauth needs it).
	project string
	// seedServer makes a Nova server with a parent port on subnetID and
	// returns its ID. There is no real Nova here: against a real Neutron
	// the Nova stand-in (internal/testing/novastandin) serves the Nova
	// cases, with an L2 agent stand-in (contract_nova_test.go).
	seedServer func(t *testing.T, subnetID string) string
}

// fixture is a network, a subnet and a security group made through raw
// Neutron calls by newFixture, and removed when the test ends.
type fixture struct {
	netID, subnetID, sgID string
	cidr                  netip.Prefix
	tag                   string // unique to this run, on every port made
}

func rawCall(t *testing.T, tg contractTarget, method, path string, body any, ok ...int) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := &gophercloud.RequestOpts{JSONBody: body, OkCodes: ok, KeepResponseBody: true}
	resp, err := tg.client.network.Request(ctx, method, tg.client.network.ServiceURL(path), opts)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return out
}

func field(m map[string]any, key, sub string) string {
	o, _ := m[key].(map[string]any)
	s, _ := o[sub].(string)
	return s
}

func newFixture(t *testing.T, tg contractTarget, cidr string) fixture {
	t.Helper()
	f := fixture{tag: "kuryr-contract-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + fmt.Sprint("-", time.Now().UnixNano()),
		cidr: netip.MustParsePrefix(cidr)}
	with := func(m map[string]any) map[string]any {
		if tg.project != "" {
			m["project_id"] = tg.project
		}
		return m
	}
	n := rawCall(t, tg, "POST", "networks", map[string]any{"network": with(map[string]any{"name": "contract"})}, 201)
	f.netID = field(n, "network", "id")
	t.Cleanup(func() { rawCall(t, tg, "DELETE", "networks/"+f.netID, nil, 204) })
	s := rawCall(t, tg, "POST", "subnets", map[string]any{"subnet": with(map[string]any{
		"network_id": f.netID, "cidr": cidr, "ip_version": 4, "name": "contract"})}, 201)
	f.subnetID = field(s, "subnet", "id")
	g := rawCall(t, tg, "POST", "security-groups", map[string]any{"security_group": with(map[string]any{"name": "contract"})}, 201)
	f.sgID = field(g, "security_group", "id")
	t.Cleanup(func() { rawCall(t, tg, "DELETE", "security-groups/"+f.sgID, nil, 204) })
	return f
}

// newTrunk makes a VM's parent port on f's network (on subnet, when not
// "") and a trunk called name on it, both removed when the test ends; it
// returns the parent and the trunk's ID.
func newTrunk(t *testing.T, tg contractTarget, f fixture, subnet, name string) (Port, string) {
	t.Helper()
	parent, err := tg.client.CreatePort(context.Background(), PortSpec{NetworkID: f.netID, SubnetID: subnet, Name: "vm-parent", Tags: []string{f.tag}})
	if err != nil {
		t.Fatal(err)
	}
	deleteAfter(t, tg, parent.ID)
	body := map[string]any{"port_id": parent.ID, "name": name}
	if tg.project != "" {
		body["project_id"] = tg.project
	}
	trunkID := field(rawCall(t, tg, "POST", "trunks", map[string]any{"trunk": body}, 201), "trunk", "id")
	t.Cleanup(func() { rawCall(t, tg, "DELETE", "trunks/"+trunkID, nil, 204) })
	return parent, trunkID
}

// deleteAfter deletes a port made by the test when it ends.
func deleteAfter(t *testing.T, tg contractTarget, id string) {
	t.Cleanup(func() {
		if err := tg.client.DeletePort(context.Background(), id); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func wantClass(t *testing.T, err, class error, status int, typ string) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Fatalf("error %v: want class %v", err, class)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not *Error", err)
	}
	if status != 0 && e.Status != status {
		t.Errorf("status %d, want %d (%v)", e.Status, status, err)
	}
	if typ != "" && e.Type != typ {
		t.Errorf("type %q, want %q (%v)", e.Type, typ, err)
	}
}

// runContract is the behaviour kuryr-dpdk relies on, checked against tg.
func runContract(t *testing.T, tg contractTarget) {
	ctx := context.Background()
	c := tg.client

	t.Run("networks", func(t *testing.T) {
		f := newFixture(t, tg, "10.91.0.0/24")
		n, err := c.GetNetwork(ctx, f.netID)
		if err != nil || n.ID != f.netID || n.MTU == 0 || !slices.Contains(n.Subnets, f.subnetID) {
			t.Fatalf("GetNetwork = %+v, %v", n, err)
		}
		s, err := c.GetSubnet(ctx, f.subnetID)
		if err != nil || s.CIDR != "10.91.0.0/24" || s.GatewayIP != "10.91.0.1" || s.NetworkID != f.netID {
			t.Fatalf("GetSubnet = %+v, %v", s, err)
		}
		_, err = c.GetSubnet(ctx, "00000000-0000-4000-8000-000000000000")
		wantClass(t, err, ErrNotFound, 404, "SubnetNotFound")
		_, err = c.GetNetwork(ctx, "00000000-0000-4000-8000-000000000000")
		wantClass(t, err, ErrNotFound, 404, "NetworkNotFound")
	})

	t.Run("port lifecycle", func(t *testing.T) {
		f := newFixture(t, tg, "10.92.0.0/24")
		p, err := c.CreatePort(ctx, PortSpec{NetworkID: f.netID, SubnetID: f.subnetID, Name: "pod-a",
			SecurityGroups: []string{f.sgID}, DeviceOwner: "compute:kuryr", Tags: []string{f.tag, "pod-uid-a"}})
		if err != nil {
			t.Fatal(err)
		}
		deleteAfter(t, tg, p.ID)
		if p.Status != PortStatusDown || !strings.HasPrefix(p.MACAddress, "fa:16:3e:") || p.RevisionNumber < 1 ||
			p.DeviceOwner != "compute:kuryr" || !slices.Equal(p.SecurityGroups, []string{f.sgID}) {
			t.Errorf("created port %+v", p)
		}
		if len(p.FixedIPs) != 1 || p.FixedIPs[0].SubnetID != f.subnetID ||
			!f.cidr.Contains(netip.MustParseAddr(p.FixedIPs[0].IPAddress)) {
			t.Errorf("fixed IPs %+v not in %s", p.FixedIPs, f.cidr)
		}
		if !slices.Contains(p.Tags, f.tag) || !slices.Contains(p.Tags, "pod-uid-a") {
			t.Errorf("tags %v", p.Tags)
		}
		got, err := c.GetPort(ctx, p.ID)
		if err != nil || got.ID != p.ID || got.MACAddress != p.MACAddress {
			t.Fatalf("GetPort = %+v, %v", got, err)
		}
		for name, flt := range map[string]PortFilter{
			"tags":     {Tags: []string{f.tag, "pod-uid-a"}},
			"tags-any": {TagsAny: []string{f.tag, "no-such-tag"}},
			"fixed ip": {FixedIP: p.FixedIPs[0].IPAddress, NetworkID: f.netID},
			"owner":    {DeviceOwner: "compute:kuryr", NetworkID: f.netID},
		} {
			ps, err := c.ListPorts(ctx, flt)
			if err != nil || len(ps) != 1 || ps[0].ID != p.ID {
				t.Errorf("ListPorts by %s = %d ports, %v", name, len(ps), err)
			}
		}
		if ps, err := c.ListPorts(ctx, PortFilter{Tags: []string{f.tag, "no-such-tag"}}); err != nil || len(ps) != 0 {
			t.Errorf("ListPorts with a missing tag = %d ports, %v", len(ps), err)
		}

		up, err := c.UpdatePortSecurityGroups(ctx, p.ID, []string{})
		if err != nil || len(up.SecurityGroups) != 0 || up.RevisionNumber <= got.RevisionNumber {
			t.Fatalf("UpdatePortSecurityGroups = %+v, %v (revision was %d)", up, err, got.RevisionNumber)
		}
		pairs := []AddressPair{{IPAddress: "10.92.0.200"}}
		ap, err := c.UpdateAllowedAddressPairs(ctx, p.ID, pairs, up.RevisionNumber)
		if err != nil || len(ap.AllowedAddressPairs) != 1 || ap.AllowedAddressPairs[0].MACAddress != p.MACAddress ||
			ap.RevisionNumber <= up.RevisionNumber {
			t.Fatalf("UpdateAllowedAddressPairs = %+v, %v", ap, err)
		}
		_, err = c.UpdateAllowedAddressPairs(ctx, p.ID, nil, up.RevisionNumber) // stale revision
		wantClass(t, err, ErrConflict, 412, "")
		mod, err := c.ModifyAllowedAddressPairs(ctx, p.ID, DefaultBackoff, func(ps []AddressPair) []AddressPair {
			return append(ps, AddressPair{IPAddress: "10.92.0.201"})
		})
		if err != nil || len(mod.AllowedAddressPairs) != 2 {
			t.Fatalf("ModifyAllowedAddressPairs = %+v, %v", mod.AllowedAddressPairs, err)
		}

		if err := c.DeletePort(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if err := c.DeletePort(ctx, p.ID); err != nil {
			t.Errorf("deleting a deleted port: %v", err)
		}
		_, err = c.GetPort(ctx, p.ID)
		wantClass(t, err, ErrNotFound, 404, "PortNotFound")
	})

	// Neutron refuses a MAC already used on the same network (409
	// MacAddressInUse), not one used on another network.
	t.Run("mac address is unique per network", func(t *testing.T) {
		a, b := newFixture(t, tg, "10.98.0.0/24"), newFixture(t, tg, "10.99.0.0/24")
		n := time.Now().UnixNano() // a MAC no other run holds
		mac := fmt.Sprintf("fa:16:3f:%02x:%02x:%02x", byte(n>>16), byte(n>>8), byte(n))
		create := func(f fixture, name string) (Port, error) {
			return c.CreatePort(ctx, PortSpec{NetworkID: f.netID, SubnetID: f.subnetID, Name: name,
				SecurityGroups: []string{f.sgID}, Tags: []string{f.tag}, MACAddress: mac})
		}
		first, err := create(a, "mac-a")
		if err != nil {
			t.Fatal(err)
		}
		deleteAfter(t, tg, first.ID)
		other, err := create(b, "mac-b")
		if err != nil {
			t.Fatalf("same MAC %s on another network: %v", mac, err)
		}
		deleteAfter(t, tg, other.ID)
		if first.MACAddress != mac || other.MACAddress != mac {
			t.Errorf("MACs %s and %s, want %s", first.MACAddress, other.MACAddress, mac)
		}
		_, err = create(a, "mac-a-again")
		wantClass(t, err, ErrConflict, 409, "MacAddressInUse")
		var e *Error
		want := fmt.Sprintf("Unable to complete operation for network %s. The mac address %s is in use.", a.netID, mac)
		if errors.As(err, &e) && e.Message != want {
			t.Errorf("message %q, want %q", e.Message, want)
		}
	})

	t.Run("bulk create", func(t *testing.T) {
		f := newFixture(t, tg, "10.93.0.0/24")
		var specs []PortSpec
		for i := range 3 {
			specs = append(specs, PortSpec{NetworkID: f.netID, SubnetID: f.subnetID, Name: fmt.Sprint("bulk-", i),
				Tags: []string{f.tag}})
		}
		ps, err := c.CreatePorts(ctx, specs)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, p := range ps {
			deleteAfter(t, tg, p.ID)
			seen[p.MACAddress], seen[p.FixedIPs[0].IPAddress] = true, true
		}
		if len(ps) != 3 || len(seen) != 6 {
			t.Errorf("bulk made %d ports with %d distinct MACs and IPs", len(ps), len(seen))
		}
		listed, err := c.ListPorts(ctx, PortFilter{Tags: []string{f.tag}})
		if err != nil || len(listed) != 3 {
			t.Errorf("ListPorts = %d, %v", len(listed), err)
		}
	})

	t.Run("port listing in pages with fields", func(t *testing.T) {
		f := newFixture(t, tg, "10.87.0.0/24")
		var specs []PortSpec
		for i := range 5 {
			specs = append(specs, PortSpec{NetworkID: f.netID, SubnetID: f.subnetID, Name: fmt.Sprint("paged-", i),
				SecurityGroups: []string{f.sgID}, DeviceOwner: "compute:kuryr", Tags: []string{f.tag, fmt.Sprint("paged-", i)}})
		}
		made, err := c.CreatePorts(ctx, specs)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range made {
			deleteAfter(t, tg, p.ID)
		}
		// The cloud honours ?fields=: only the attributes named come back.
		raw := rawCall(t, tg, "GET", "ports?tags="+url.QueryEscape(f.tag)+"&fields=id&fields=tags", nil, 200)
		list, _ := raw["ports"].([]any)
		if len(list) != 5 {
			t.Fatalf("GET ports with fields: %d ports, want 5", len(list))
		}
		for _, v := range list {
			m, _ := v.(map[string]any)
			if keys := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, []string{"id", "tags"}) {
				t.Errorf("GET ports?fields=id&fields=tags answered a port with %v", keys)
			}
		}
		// Two ports a page: three pages, each port once, and every
		// attribute of Port as a GET of the port alone shows it.
		_, byID := listTwoAPage(t, c, PortFilter{Tags: []string{f.tag}}, 5)
		for _, p := range made {
			got, err := c.GetPort(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(byID[p.ID], got) {
				t.Errorf("port %s listed as\n%+v\nGET shows\n%+v", p.ID, byID[p.ID], got)
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		f := newFixture(t, tg, "10.94.0.0/24")
		_, err := c.CreatePort(ctx, PortSpec{NetworkID: "00000000-0000-4000-8000-000000000000"})
		wantClass(t, err, ErrNotFound, 404, "NetworkNotFound")
		_, err = c.CreatePort(ctx, PortSpec{NetworkID: f.netID, IPs: []FixedIP{{SubnetID: f.subnetID, IPAddress: "not-an-ip"}}})
		wantClass(t, err, ErrTerminal, 400, "")
		p, err := c.CreatePort(ctx, PortSpec{NetworkID: f.netID, IPs: []FixedIP{{SubnetID: f.subnetID, IPAddress: "10.94.0.50"}}, Tags: []string{f.tag}})
		if err != nil {
			t.Fatal(err)
		}
		deleteAfter(t, tg, p.ID)
		_, err = c.CreatePort(ctx, PortSpec{NetworkID: f.netID, IPs: []FixedIP{{SubnetID: f.subnetID, IPAddress: "10.94.0.50"}}})
		wantClass(t, err, ErrConflict, 409, "IpAddressAlreadyAllocated")
	})

	// NPWG ips: every address of a selection element on the one port.
	t.Run("several fixed ips", func(t *testing.T) {
		f := newFixture(t, tg, "10.88.0.0/24")
		p, err := c.CreatePort(ctx, PortSpec{NetworkID: f.netID, Tags: []string{f.tag},
			IPs: []FixedIP{{SubnetID: f.subnetID, IPAddress: "10.88.0.10"}, {IPAddress: "10.88.0.11"}}})
		if err != nil {
			t.Fatal(err)
		}
		deleteAfter(t, tg, p.ID)
		want := []FixedIP{{SubnetID: f.subnetID, IPAddress: "10.88.0.10"}, {SubnetID: f.subnetID, IPAddress: "10.88.0.11"}}
		if !slices.Equal(p.FixedIPs, want) {
			t.Errorf("fixed IPs %+v, want %+v", p.FixedIPs, want)
		}
		_, err = c.CreatePort(ctx, PortSpec{NetworkID: f.netID, IPs: []FixedIP{{IPAddress: "10.87.0.11"}}})
		wantClass(t, err, ErrTerminal, 400, "InvalidIpForNetwork")
		_, err = c.CreatePort(ctx, PortSpec{NetworkID: f.netID, IPs: []FixedIP{{IPAddress: "10.88.0.20"}, {IPAddress: "10.88.0.20"}}})
		wantClass(t, err, ErrTerminal, 400, "")
		_, err = c.CreatePort(ctx, PortSpec{NetworkID: f.netID, IPs: []FixedIP{{IPAddress: "10.88.0.21"}, {IPAddress: "10.88.0.11"}}})
		wantClass(t, err, ErrConflict, 409, "IpAddressAlreadyAllocated")
	})

	// The VNF options of a NAD: a port without port security has no
	// security groups (none asked, no default given); Neutron refuses
	// groups or address pairs on it; address pairs without a MAC take the
	// port's.
	t.Run("port security and allowed address pairs", func(t *testing.T) {
		f := newFixture(t, tg, "10.89.0.0/24")
		off := false
		open, err := c.CreatePort(ctx, PortSpec{NetworkID: f.netID, SubnetID: f.subnetID, Tags: []string{f.tag}, PortSecurityEnabled: &off})
		if err != nil {
			t.Fatal(err)
		}
		deleteAfter(t, tg, open.ID)
		if open.PortSecurityEnabled == nil || *open.PortSecurityEnabled || len(open.SecurityGroups) != 0 {
			t.Errorf("port without port security: port_security_enabled %v, security groups %v", open.PortSecurityEnabled, open.SecurityGroups)
		}
		_, err = c.CreatePort(ctx, PortSpec{NetworkID: f.netID, PortSecurityEnabled: &off, SecurityGroups: []string{f.sgID}})
		wantClass(t, err, ErrTerminal, 400, "PortSecurityAndIPRequiredForSecurityGroups")
		_, err = c.CreatePort(ctx, PortSpec{NetworkID: f.netID, PortSecurityEnabled: &off,
			AllowedAddressPairs: []AddressPair{{IPAddress: "10.90.0.0/24"}}})
		wantClass(t, err, ErrConflict, 409, "AddressPairAndPortSecurityRequired")
		_, err = c.UpdateAllowedAddressPairs(ctx, open.ID, []AddressPair{{IPAddress: "10.90.0.1"}}, -1)
		wantClass(t, err, ErrConflict, 409, "AddressPairAndPortSecurityRequired")

		pairs := []AddressPair{{IPAddress: "10.90.0.0/24"}, {IPAddress: "10.90.1.1", MACAddress: "fa:16:3e:12:34:56"}}
		fwd, err := c.CreatePort(ctx, PortSpec{NetworkID: f.netID, SubnetID: f.subnetID, Tags: []string{f.tag},
			SecurityGroups: []string{f.sgID}, AllowedAddressPairs: pairs})
		if err != nil {
			t.Fatal(err)
		}
		deleteAfter(t, tg, fwd.ID)
		want := []AddressPair{{IPAddress: "10.90.0.0/24", MACAddress: fwd.MACAddress}, pairs[1]}
		got := slices.SortedFunc(slices.Values(fwd.AllowedAddressPairs), func(a, b AddressPair) int { return strings.Compare(a.IPAddress, b.IPAddress) })
		if fwd.PortSecurityEnabled == nil || !*fwd.PortSecurityEnabled || !slices.Equal(got, want) || !slices.Equal(fwd.SecurityGroups, []string{f.sgID}) {
			t.Errorf("port with address pairs: port security %v, pairs %+v (want %+v), groups %v", fwd.PortSecurityEnabled, got, want, fwd.SecurityGroups)
		}
		_, err = c.CreatePort(ctx, PortSpec{NetworkID: f.netID, AllowedAddressPairs: []AddressPair{{IPAddress: "10.90.0.5"}, {IPAddress: "10.90.0.5"}}})
		wantClass(t, err, ErrTerminal, 400, "DuplicateAddressPairInRequest")
		var eleven []AddressPair
		for i := range 11 {
			eleven = append(eleven, AddressPair{IPAddress: fmt.Sprintf("10.90.2.%d", i+1)})
		}
		_, err = c.CreatePort(ctx, PortSpec{NetworkID: f.netID, AllowedAddressPairs: eleven})
		wantClass(t, err, ErrTerminal, 400, "AllowedAddressPairExhausted")
		_, err = c.CreatePort(ctx, PortSpec{NetworkID: f.netID, AllowedAddressPairs: []AddressPair{{IPAddress: "any"}}})
		wantClass(t, err, ErrTerminal, 400, "")
	})

	t.Run("trunk subports", func(t *testing.T) {
		f := newFixture(t, tg, "10.95.0.0/24")
		parent, trunkID := newTrunk(t, tg, f, "", "contract-trunk")

		subs, err := c.CreatePorts(ctx, []PortSpec{{NetworkID: f.netID, Tags: []string{f.tag}}, {NetworkID: f.netID, Tags: []string{f.tag}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			deleteAfter(t, tg, s.ID)
		}
		tr, err := c.AddSubports(ctx, trunkID, []Subport{{PortID: subs[0].ID, SegmentationID: 101}})
		if err != nil || len(tr.Subports) != 1 || tr.Subports[0].SegmentationID != 101 || tr.Subports[0].SegmentationType != "vlan" {
			t.Fatalf("AddSubports = %+v, %v", tr, err)
		}
		_, err = c.AddSubports(ctx, trunkID, []Subport{{PortID: subs[1].ID, SegmentationID: 101}})
		wantClass(t, err, ErrConflict, 409, "DuplicateSubPort")
		if _, err := c.AddSubports(ctx, trunkID, []Subport{{PortID: subs[1].ID, SegmentationID: 102}}); err != nil {
			t.Fatal(err)
		}
		_, err = c.AddSubports(ctx, trunkID, []Subport{{PortID: subs[1].ID, SegmentationID: 5000}})
		wantClass(t, err, ErrTerminal, 400, "")

		pp, err := c.GetPort(ctx, parent.ID)
		if err != nil || pp.TrunkDetails == nil || pp.TrunkDetails.TrunkID != trunkID || len(pp.TrunkDetails.Subports) != 2 {
			t.Fatalf("parent port trunk_details = %+v, %v", pp.TrunkDetails, err)
		}
		for _, sp := range pp.TrunkDetails.Subports {
			if sp.MACAddress == "" {
				t.Errorf("trunk_details subport %+v without MAC", sp)
			}
		}
		// Only an L2 agent binds subports (device_owner trunk:subport,
		// host, ACTIVE); without one Neutron leaves their fields alone.
		if sp, err := c.GetPort(ctx, subs[0].ID); err != nil || sp.DeviceOwner != "" || sp.DeviceID != "" || sp.Status != PortStatusDown {
			t.Errorf("subport port without an agent = owner %q device %q status %s, %v; want untouched and DOWN", sp.DeviceOwner, sp.DeviceID, sp.Status, err)
		}
		_, err = c.AddSubports(ctx, trunkID, []Subport{{PortID: subs[0].ID, SegmentationID: 103}})
		wantClass(t, err, ErrConflict, 409, "TrunkPortInUse")
		_, err = c.AddSubports(ctx, trunkID, []Subport{{PortID: parent.ID, SegmentationID: 104}})
		wantClass(t, err, ErrConflict, 409, "ParentPortInUse")
		list, err := c.ListSubports(ctx, trunkID)
		if err != nil || len(list) != 2 {
			t.Fatalf("ListSubports = %+v, %v", list, err)
		}
		tr, err = c.RemoveSubports(ctx, trunkID, []string{subs[0].ID, subs[1].ID})
		if err != nil || len(tr.Subports) != 0 {
			t.Fatalf("RemoveSubports = %+v, %v", tr, err)
		}
		if _, err := c.RemoveSubports(ctx, trunkID, []string{subs[0].ID}); err != nil {
			t.Errorf("removing a removed subport: %v", err)
		}
		_, err = c.GetTrunk(ctx, "00000000-0000-4000-8000-000000000000")
		wantClass(t, err, ErrNotFound, 404, "TrunkNotFound")
	})

	t.Run("pool batch: bulk create then one add_subports then tags replaced", func(t *testing.T) { contractPoolBatch(t, tg) })
	t.Run("batch refused whole for one bad request", func(t *testing.T) { contractBatchRefusals(t, tg) })

	t.Run("binding", func(t *testing.T) {
		f := newFixture(t, tg, "10.96.0.0/24")
		p, err := c.CreatePort(ctx, PortSpec{NetworkID: f.netID, Tags: []string{f.tag}})
		if err != nil {
			t.Fatal(err)
		}
		deleteAfter(t, tg, p.ID)
		rawCall(t, tg, "PUT", "ports/"+p.ID, map[string]any{"port": map[string]any{"binding:host_id": "node-1"}}, 200)
		got, err := c.GetPort(ctx, p.ID)
		if err != nil || got.HostID != "node-1" || got.RevisionNumber <= p.RevisionNumber {
			t.Fatalf("bound port = %+v, %v", got, err)
		}
		// No L2 agent runs in either target: nothing turns the port ACTIVE.
		if got.Status != PortStatusDown {
			t.Errorf("bound port status %s without an agent, want DOWN", got.Status)
		}
		rawCall(t, tg, "PUT", "ports/"+p.ID+"/tags/extra-tag", nil, 201)
		if ps, err := c.ListPorts(ctx, PortFilter{Tags: []string{f.tag, "extra-tag"}}); err != nil || len(ps) != 1 {
			t.Errorf("ListPorts after PUT tag = %d, %v", len(ps), err)
		}
	})

	t.Run("nova interfaces", func(t *testing.T) {
		if tg.seedServer == nil {
			t.Fatal("the target has no Nova: every target runs the Nova cases")
		}
		f := newFixture(t, tg, "10.97.0.0/24")
		serverID := tg.seedServer(t, f.subnetID)
		s, err := c.GetServer(ctx, serverID)
		if err != nil || s.ID != serverID || s.Status != "ACTIVE" || s.Host == "" {
			t.Fatalf("GetServer = %+v, %v", s, err)
		}
		p, err := c.CreatePort(ctx, PortSpec{NetworkID: f.netID, Tags: []string{f.tag}})
		if err != nil {
			t.Fatal(err)
		}
		deleteAfter(t, tg, p.ID)
		ifc, err := c.AttachInterface(ctx, serverID, p.ID)
		if err != nil || ifc.PortID != p.ID || ifc.MAC != p.MACAddress || ifc.NetworkID != f.netID || len(ifc.FixedIPs) != 1 {
			t.Fatalf("AttachInterface = %+v, %v", ifc, err)
		}
		bound, err := c.GetPort(ctx, p.ID)
		if err != nil || bound.DeviceID != serverID || bound.DeviceOwner != "compute:nova" || bound.HostID != s.Host ||
			bound.Status != PortStatusActive {
			t.Fatalf("attached port = %+v, %v", bound, err)
		}
		_, err = c.AttachInterface(ctx, serverID, p.ID)
		wantClass(t, err, ErrConflict, 409, "")
		if ps, err := c.ListPorts(ctx, PortFilter{DeviceID: serverID, DeviceOwner: "compute:nova"}); err != nil ||
			!slices.ContainsFunc(ps, func(q Port) bool { return q.ID == p.ID }) {
			t.Errorf("ListPorts by device = %d ports, %v", len(ps), err)
		}
		ifs, err := c.ListInterfaces(ctx, serverID)
		if err != nil || !slices.ContainsFunc(ifs, func(i Interface) bool { return i.PortID == p.ID }) {
			t.Fatalf("ListInterfaces = %+v, %v", ifs, err)
		}
		if got, err := c.GetInterface(ctx, serverID, p.ID); err != nil || got.PortState != PortStatusActive {
			t.Fatalf("GetInterface = %+v, %v", got, err)
		}
		if err := c.DetachInterface(ctx, serverID, p.ID); err != nil {
			t.Fatal(err)
		}
		if err := c.DetachInterface(ctx, serverID, p.ID); err != nil {
			t.Errorf("detaching a port being detached: %v", err)
		}
		// Nova detaches in the background after its 202.
		deadline := time.Now().Add(20 * time.Second)
		for _, err = c.GetInterface(ctx, serverID, p.ID); err == nil && time.Now().Before(deadline); _, err = c.GetInterface(ctx, serverID, p.ID) {
			time.Sleep(50 * time.Millisecond)
		}
		wantClass(t, err, ErrNotFound, 404, "itemNotFound")
		if err := c.DetachInterface(ctx, serverID, p.ID); err != nil {
			t.Errorf("detaching a detached port: %v", err)
		}
		if un, err := c.GetPort(ctx, p.ID); err != nil || un.DeviceID != "" || un.HostID != "" {
			t.Errorf("detached port = %+v, %v", un, err)
		}
		_, err = c.GetServer(ctx, "00000000-0000-4000-8000-000000000000")
		wantClass(t, err, ErrNotFound, 404, "itemNotFound")
	})
}

// simTarget starts a simulated cloud and a Client on it, through Keystone
// (password) or, with noAuth, the noauth mode.
func simTarget(t *testing.T, noAuth bool) (contractTarget, *cloudsim.Cloud) {
	t.Helper()
	// NoAgent: the real neutron-server the same suite runs against has no
	// L2 agent, so neither does the simulation here.
	return simTargetWith(t, cloudsim.Options{NoAuth: noAuth, NoAgent: true})
}

// simTargetWith is simTarget with the simulation's options given.
func simTargetWith(t *testing.T, opts cloudsim.Options) (contractTarget, *cloudsim.Cloud) {
	t.Helper()
	noAuth := opts.NoAuth
	sim := startSim(t, opts)
	cfg := passwordConfig(sim)
	project := ""
	if noAuth {
		project = "kuryr-noauth-project"
		cfg = Config{NeutronURL: sim.NeutronURL(), NovaURL: sim.NovaURL(), ProjectID: project}
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return contractTarget{client: c, project: project,
		seedServer: func(t *testing.T, subnetID string) string {
			s, err := sim.SeedServer(cloudsim.ServerSpec{Name: "node-1", SubnetID: subnetID})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := sim.DeleteServer(s.Server.ID); err != nil {
					t.Error(err)
				}
			})
			return s.Server.ID
		}}, sim
}

func TestContractCloudsim(t *testing.T) {
	t.Parallel()
	tg, sim := simTarget(t, false)
	runContract(t, tg)
	if sim.Count("keystone.tokens.create") != 1 {
		t.Errorf("authenticated %d times, want once", sim.Count("keystone.tokens.create"))
	}
}

func TestContractCloudsimNoAuth(t *testing.T) {
	t.Parallel()
	tg, _ := simTarget(t, true)
	runContract(t, tg)
}
