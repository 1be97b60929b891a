package neutrontest

import (
	"net/http"
	"slices"
	"testing"
)

// TestRealNeutronMore records the rest of what the simulated cloud has to
// answer like Neutron: the tag sub-resource, pagination, allowed address
// pairs, trunks created with subports, and the 400/404/409 answers around
// them. Its exchanges go to testdata/more-NN-name.json.
func TestRealNeutronMore(t *testing.T) {
	srv := New(t)
	a := &api{t: t, base: srv.URL + "/v2.0", prefix: "more-"}
	defer a.finish()
	proj := srv.ProjectID

	net := a.do("network-create", "POST", "/networks", nil,
		map[string]any{"network": map[string]any{"name": "kuryr-more", "project_id": proj}}, http.StatusCreated)
	netID := getStr(t, net, "network", "id")
	a.do("subnet-create", "POST", "/subnets", nil, map[string]any{"subnet": map[string]any{
		"network_id": netID, "cidr": "10.20.0.0/24", "ip_version": 4, "project_id": proj,
		// Neutron picks automatic addresses at random from the pool: keep the
		// ones this test asks for by name (.50, .51, .60) outside it.
		"allocation_pools": []any{map[string]any{"start": "10.20.0.2", "end": "10.20.0.40"}}}}, http.StatusCreated)
	newPort := func(name string, extra map[string]any) map[string]any {
		t.Helper()
		body := map[string]any{"network_id": netID, "project_id": proj, "name": name}
		for k, v := range extra {
			body[k] = v
		}
		return a.do("port-create-"+name, "POST", "/ports", nil, map[string]any{"port": body}, http.StatusCreated)
	}

	// Tags: given unsorted on create, answered sorted.
	p := newPort("unsorted-tags", map[string]any{"tags": []any{"zeta", "alpha"}})
	portID := getStr(t, p, "port", "id")
	if got, _ := get(p, "port", "tags").([]any); !slices.Equal(got, []any{"alpha", "zeta"}) {
		t.Errorf("tags given [zeta alpha] answered %v", got)
	}
	tagPath := "/ports/" + portID + "/tags"
	a.do("tag-add-one", "PUT", tagPath+"/beta", nil, nil, http.StatusCreated)
	a.do("tag-add-one-again", "PUT", tagPath+"/beta", nil, nil, http.StatusCreated)
	a.do("tag-check-present", "GET", tagPath+"/beta", nil, nil, http.StatusNoContent)
	a.do("tag-check-absent", "GET", tagPath+"/nope", nil, nil, http.StatusNotFound)
	all := a.do("tags-replace", "PUT", tagPath, nil, map[string]any{"tags": []any{"y", "x"}}, http.StatusOK)
	if got, _ := all["tags"].([]any); len(got) != 2 {
		t.Errorf("PUT tags answered %v, want two tags", all)
	}
	a.do("tags-list", "GET", tagPath, nil, nil, http.StatusOK)
	a.do("tag-delete", "DELETE", tagPath+"/x", nil, nil, http.StatusNoContent)
	nf := a.do("tag-delete-absent", "DELETE", tagPath+"/x", nil, nil, http.StatusNotFound)
	wantField(t, "delete absent tag", nf, "TagNotFound", "NeutronError", "type")
	a.do("tags-delete-all", "DELETE", tagPath, nil, nil, http.StatusNoContent)

	// Pagination and field selection.
	other := getStr(t, newPort("second", nil), "port", "id")
	page := a.do("ports-list-limit-fields", "GET", "/ports?limit=1&fields=id&fields=status&network_id="+netID,
		nil, nil, http.StatusOK)
	if links, _ := page["ports_links"].([]any); len(links) == 0 {
		t.Errorf("GET /ports?limit=1 has no ports_links: %v", page)
	}

	// nested-macvlan: allowed address pairs (no MAC given: the port's own).
	aap := a.do("port-update-allowed-address-pairs", "PUT", "/ports/"+portID, nil, map[string]any{"port": map[string]any{
		"allowed_address_pairs": []any{
			map[string]any{"ip_address": "10.20.0.50", "mac_address": "fa:16:3e:00:00:01"},
			map[string]any{"ip_address": "10.20.0.51"},
		}}}, http.StatusOK)
	wantField(t, "allowed address pair without MAC", aap, get(aap, "port", "mac_address"),
		"port", "allowed_address_pairs", "1", "mac_address")

	// Errors on ports.
	fixed := map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.20.0.60"}}}
	newPort("fixed-ip", fixed)
	dupIP := a.do("port-create-ip-in-use", "POST", "/ports", nil, map[string]any{"port": map[string]any{
		"network_id": netID, "project_id": proj, "fixed_ips": fixed["fixed_ips"]}}, http.StatusConflict)
	wantField(t, "IP in use", dupIP, "IpAddressAlreadyAllocated", "NeutronError", "type")
	bad := a.do("port-create-unknown-attribute", "POST", "/ports", nil, map[string]any{"port": map[string]any{
		"network_id": netID, "project_id": proj, "bogus": 1}}, http.StatusBadRequest)
	wantField(t, "unknown attribute", bad, "HTTPBadRequest", "NeutronError", "type")
	a.do("port-create-missing-network", "POST", "/ports", nil, map[string]any{"port": map[string]any{
		"network_id": "00000000-0000-0000-0000-000000000000", "project_id": proj}}, http.StatusNotFound)
	inUse := a.do("network-delete-in-use", "DELETE", "/networks/"+netID, nil, nil, http.StatusConflict)
	wantField(t, "delete network with ports", inUse, "NetworkInUse", "NeutronError", "type")

	// Trunks created with their subports; errors around subports.
	a.do("trunk-create-bad-vlan", "POST", "/trunks", nil, map[string]any{"trunk": map[string]any{
		"port_id": portID, "project_id": proj, "sub_ports": []any{map[string]any{
			"port_id": other, "segmentation_type": "vlan", "segmentation_id": 5000}}}}, http.StatusBadRequest)
	tr := a.do("trunk-create-with-subports", "POST", "/trunks", nil, map[string]any{"trunk": map[string]any{
		"port_id": portID, "project_id": proj, "sub_ports": []any{map[string]any{
			"port_id": other, "segmentation_type": "vlan", "segmentation_id": 200}}}}, http.StatusCreated)
	trunkID := getStr(t, tr, "trunk", "id")
	a.do("trunk-create-same-parent", "POST", "/trunks", nil, map[string]any{"trunk": map[string]any{
		"port_id": portID, "project_id": proj}}, http.StatusConflict)
	a.do("trunks-list-by-port", "GET", "/trunks?port_id="+portID, nil, nil, http.StatusOK)
	a.do("trunk-get", "GET", "/trunks/"+trunkID, nil, nil, http.StatusOK)
	a.do("trunk-get-subports", "GET", "/trunks/"+trunkID+"/get_subports", nil, nil, http.StatusOK)
	a.do("port-delete-trunk-parent", "DELETE", "/ports/"+portID, nil, nil, http.StatusConflict)

	used := getStr(t, newPort("with-device", map[string]any{"device_id": "vm-9"}), "port", "id")
	a.do("trunk-add-subports-device-in-use", "PUT", "/trunks/"+trunkID+"/add_subports", nil,
		map[string]any{"sub_ports": []any{map[string]any{
			"port_id": used, "segmentation_type": "vlan", "segmentation_id": 201}}}, http.StatusConflict)
	a.do("trunk-add-subports-already-subport", "PUT", "/trunks/"+trunkID+"/add_subports", nil,
		map[string]any{"sub_ports": []any{map[string]any{
			"port_id": other, "segmentation_type": "vlan", "segmentation_id": 202}}}, http.StatusConflict)
	a.do("trunk-remove-subports-not-a-subport", "PUT", "/trunks/"+trunkID+"/remove_subports", nil,
		map[string]any{"sub_ports": []any{map[string]any{"port_id": used}}}, http.StatusNotFound)
	a.do("port-delete-subport", "DELETE", "/ports/"+other, nil, nil, http.StatusConflict)
	a.do("trunk-delete", "DELETE", "/trunks/"+trunkID, nil, nil, http.StatusNoContent)
}
