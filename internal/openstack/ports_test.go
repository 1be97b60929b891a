package openstack

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// TestListPortsPagesWithFields: ListPorts asks for Port's attributes only
// (?fields=, every JSON name of Port) and reads the listing page by page
// (?limit=, then ?marker= the last port of the page before), until a page
// that is not full; each port comes once.
func TestListPortsPagesWithFields(t *testing.T) {
	t.Parallel()
	sim := startSim(t, cloudsim.Options{})
	var mu sync.Mutex
	var queries []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/ports") {
			mu.Lock()
			queries = append(queries, r.URL.Query())
			mu.Unlock()
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	c, err := New(context.Background(), passwordConfig(sim))
	if err != nil {
		t.Fatal(err)
	}
	n, s, err := sim.SeedNetwork("n", "10.1.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	var specs []PortSpec
	for range 5 {
		specs = append(specs, PortSpec{NetworkID: n.ID, SubnetID: s.ID, Tags: []string{"paged"}})
	}
	if _, err := c.CreatePorts(context.Background(), specs); err != nil {
		t.Fatal(err)
	}
	got, _ := listTwoAPage(t, c, PortFilter{Tags: []string{"paged"}}, 5)
	if len(queries) != 3 {
		t.Fatalf("%d GET /ports, want 3 pages of 2: %v", len(queries), queries)
	}
	want := []string{"admin_state_up", "allowed_address_pairs", "binding:host_id", "binding:vif_type", "device_id",
		"device_owner", "fixed_ips", "id", "mac_address", "name", "network_id", "port_security_enabled", "project_id",
		"revision_number", "security_groups", "status", "tags", "trunk_details"}
	for i, q := range queries {
		if f := slices.Sorted(slices.Values(q["fields"])); !slices.Equal(f, want) {
			t.Errorf("page %d asked fields %v, want %v", i, f, want)
		}
		if q.Get("limit") != "2" || q.Get("tags") != "paged" {
			t.Errorf("page %d: query %v", i, q)
		}
	}
	if queries[0].Has("marker") || queries[1].Get("marker") != got[1].ID || queries[2].Get("marker") != got[3].ID {
		t.Errorf("markers %q %q %q, want none, %s, %s", queries[0].Get("marker"), queries[1].Get("marker"),
			queries[2].Get("marker"), got[1].ID, got[3].ID)
	}
}

// listTwoAPage lists the ports f selects two a page with c and fails the
// test unless there are want, each once; it returns them as listed and by
// ID.
func listTwoAPage(t *testing.T, c *Client, f PortFilter, want int) ([]Port, map[string]Port) {
	t.Helper()
	paged := *c
	paged.pageSize = 2
	listed, err := paged.ListPorts(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Port{}
	for _, p := range listed {
		byID[p.ID] = p
	}
	if len(listed) != want || len(byID) != want {
		t.Fatalf("ListPorts two a page: %d ports, %d distinct, want %d", len(listed), len(byID), want)
	}
	return listed, byID
}
