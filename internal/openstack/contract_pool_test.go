package openstack

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// contractPoolBatch is what a port pool relies on: a batch made by one bulk
// create, put on a trunk by one add_subports (a batch with one taken VLAN ID
// adds none), and a pooled port's owner tag written and removed by one tag
// replace.
func contractPoolBatch(t *testing.T, tg contractTarget) {
	ctx := context.Background()
	c := tg.client
	f := newFixture(t, tg, "10.99.0.0/24")
	_, trunkID := newTrunk(t, tg, f, "", "contract-pool-trunk")

	pool := []string{f.tag, "pool-tag"}
	var specs []PortSpec
	for range 4 {
		specs = append(specs, PortSpec{NetworkID: f.netID, SubnetID: f.subnetID, SecurityGroups: []string{f.sgID}, Tags: pool})
	}
	ps, err := c.CreatePorts(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	subs := make([]Subport, 0, len(ps))
	for i, p := range ps {
		deleteAfter(t, tg, p.ID)
		if !slices.Contains(p.Tags, "pool-tag") || !slices.Equal(p.SecurityGroups, []string{f.sgID}) {
			t.Errorf("bulk-created port %s has tags %v and groups %v", p.ID, p.Tags, p.SecurityGroups)
		}
		subs = append(subs, Subport{PortID: p.ID, SegmentationID: 201 + i})
	}
	tr, err := c.AddSubports(ctx, trunkID, subs)
	t.Cleanup(func() {
		if _, err := c.RemoveSubports(ctx, trunkID, []string{ps[0].ID, ps[1].ID, ps[2].ID, ps[3].ID}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err != nil || len(tr.Subports) != 4 {
		t.Fatalf("AddSubports of 4 in one request = %+v, %v", tr, err)
	}
	got, err := c.ListSubports(ctx, trunkID)
	if err != nil {
		t.Fatal(err)
	}
	byPort := map[string]int{}
	for _, s := range got {
		byPort[s.PortID] = s.SegmentationID
	}
	for _, s := range subs {
		if byPort[s.PortID] != s.SegmentationID {
			t.Errorf("subport %s has VLAN %d, want %d", s.PortID, byPort[s.PortID], s.SegmentationID)
		}
	}
	// A batch with one taken VLAN ID adds none of the batch.
	more, err := c.CreatePorts(ctx, []PortSpec{{NetworkID: f.netID, Tags: pool}, {NetworkID: f.netID, Tags: pool}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range more {
		deleteAfter(t, tg, p.ID)
	}
	_, err = c.AddSubports(ctx, trunkID, []Subport{{PortID: more[0].ID, SegmentationID: 210}, {PortID: more[1].ID, SegmentationID: 201}})
	wantClass(t, err, ErrConflict, 409, "DuplicateSubPort")
	if got, err := c.ListSubports(ctx, trunkID); err != nil || len(got) != 4 {
		t.Errorf("after a refused batch the trunk has %d subports (%v), want 4", len(got), err)
	}

	// Taking a pooled port: its tags replaced in one request.
	owned := []string{f.tag, "pool-tag", "owner=pod-1"}
	tags, err := c.ReplacePortTags(ctx, ps[0].ID, owned)
	slices.Sort(tags)
	slices.Sort(owned)
	if err != nil || !slices.Equal(tags, owned) {
		t.Fatalf("ReplacePortTags = %v, %v; want %v", tags, err, owned)
	}
	if l, err := c.ListPorts(ctx, PortFilter{Tags: []string{f.tag, "owner=pod-1"}}); err != nil || len(l) != 1 || l[0].ID != ps[0].ID {
		t.Errorf("ListPorts by the owner tag = %d, %v", len(l), err)
	}
	if _, err := c.ReplacePortTags(ctx, ps[0].ID, pool); err != nil {
		t.Fatal(err)
	}
	if l, err := c.ListPorts(ctx, PortFilter{Tags: []string{f.tag, "owner=pod-1"}}); err != nil || len(l) != 0 {
		t.Errorf("ListPorts by the owner tag after it was removed = %d, %v", len(l), err)
	}
	_, err = c.ReplacePortTags(ctx, "00000000-0000-4000-8000-000000000000", pool)
	wantClass(t, err, ErrNotFound, 404, "")
}

// contractBatchRefusals is what the controller's batching (pods that
// arrive together share one bulk create, pods of one trunk one
// add_subports) relies on when one request of a batch is bad: Neutron
// refuses the whole batch with that request's reason and makes none of it,
// and the others, sent again without it, go through.
func contractBatchRefusals(t *testing.T, tg contractTarget) {
	ctx := context.Background()
	c := tg.client
	f := newFixture(t, tg, "10.98.0.0/24")
	taken, err := c.CreatePort(ctx, PortSpec{NetworkID: f.netID, IPs: []FixedIP{{SubnetID: f.subnetID, IPAddress: "10.98.0.50"}}, Tags: []string{f.tag}})
	if err != nil {
		t.Fatal(err)
	}
	deleteAfter(t, tg, taken.ID)

	// Bulk create: the second of three asks for the taken address.
	batch := f.tag + "-batch"
	specs := []PortSpec{
		{NetworkID: f.netID, SubnetID: f.subnetID, Tags: []string{f.tag, batch}},
		{NetworkID: f.netID, IPs: []FixedIP{{SubnetID: f.subnetID, IPAddress: "10.98.0.50"}}, Tags: []string{f.tag, batch}},
		{NetworkID: f.netID, SubnetID: f.subnetID, Tags: []string{f.tag, batch}},
	}
	_, err = c.CreatePorts(ctx, specs)
	wantClass(t, err, ErrConflict, 409, "IpAddressAlreadyAllocated")
	if l, err := c.ListPorts(ctx, PortFilter{Tags: []string{batch}}); err != nil || len(l) != 0 {
		t.Fatalf("after a refused bulk create %d of its ports exist (%v), want none", len(l), err)
	}
	for i, s := range specs {
		p, err := c.CreatePort(ctx, s)
		if i == 1 {
			wantClass(t, err, ErrConflict, 409, "IpAddressAlreadyAllocated")
			continue
		}
		if err != nil {
			t.Fatalf("port %d of the refused batch alone: %v", i, err)
		}
		deleteAfter(t, tg, p.ID)
	}

	// add_subports: three ports in one request, the third already a
	// subport of another trunk; then one that does not exist.
	_, a := newTrunk(t, tg, f, "", "contract-batch-a")
	_, b := newTrunk(t, tg, f, "", "contract-batch-b")
	ps, err := c.CreatePorts(ctx, []PortSpec{{NetworkID: f.netID, Tags: []string{f.tag}}, {NetworkID: f.netID, Tags: []string{f.tag}},
		{NetworkID: f.netID, Tags: []string{f.tag}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		deleteAfter(t, tg, p.ID)
	}
	if _, err := c.AddSubports(ctx, b, []Subport{{PortID: ps[2].ID, SegmentationID: 300}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, tr := range []string{a, b} {
			if _, err := c.RemoveSubports(ctx, tr, []string{ps[0].ID, ps[1].ID, ps[2].ID}); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	_, err = c.AddSubports(ctx, a, []Subport{{PortID: ps[0].ID, SegmentationID: 301}, {PortID: ps[1].ID, SegmentationID: 302},
		{PortID: ps[2].ID, SegmentationID: 303}})
	wantClass(t, err, ErrConflict, 409, "TrunkPortInUse")
	var e *Error
	if errors.As(err, &e) && !strings.Contains(e.Message, ps[2].ID) {
		t.Errorf("the refusal %q does not name the port it is about, %s", e.Message, ps[2].ID)
	}
	if got, err := c.ListSubports(ctx, a); err != nil || len(got) != 0 {
		t.Fatalf("after a refused add_subports trunk %s has %d subports (%v), want none", a, len(got), err)
	}
	_, err = c.AddSubports(ctx, a, []Subport{{PortID: ps[0].ID, SegmentationID: 301}, {PortID: "00000000-0000-4000-8000-000000000000", SegmentationID: 304}})
	wantClass(t, err, ErrNotFound, 404, "PortNotFound")
	if got, err := c.ListSubports(ctx, a); err != nil || len(got) != 0 {
		t.Fatalf("after an add_subports with a missing port trunk %s has %d subports (%v), want none", a, len(got), err)
	}
	if _, err := c.AddSubports(ctx, a, []Subport{{PortID: ps[0].ID, SegmentationID: 301}, {PortID: ps[1].ID, SegmentationID: 302}}); err != nil {
		t.Fatalf("the good ports of the refused batch, again without the bad one: %v", err)
	}
	if got, err := c.ListSubports(ctx, a); err != nil || len(got) != 2 {
		t.Errorf("trunk %s has %d subports (%v), want 2", a, len(got), err)
	}
}
