package networks

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSelections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		value   string
		want    []Selection
		wantErr string // substring; "" means no error
	}{
		{name: "empty", value: "  ", want: nil},
		{name: "comma one", value: "mgmt", want: []Selection{{Namespace: "pods", Name: "mgmt"}}},
		{name: "comma full", value: "mgmt, other/dp@dpdk0 ,dp2@net7", want: []Selection{
			{Namespace: "pods", Name: "mgmt"},
			{Namespace: "other", Name: "dp", Interface: "dpdk0"},
			{Namespace: "pods", Name: "dp2", Interface: "net7"},
		}},
		{name: "comma stray comma", value: "a,,b", wantErr: "[1]: empty network name"},
		{name: "comma empty ifname", value: "a@", wantErr: "empty interface name"},
		{name: "comma bad name", value: "Mgmt_Net", wantErr: `[0].name: "Mgmt_Net" is not a valid`},
		{name: "comma long ifname", value: "a@abcdefghijklmnop", wantErr: "longer than 15"},
		{name: "comma bad namespace", value: "NS/a", wantErr: "[0].namespace"},
		{name: "json full", value: `[{"name":"dp","namespace":"other","interface":"dpdk0","mac":"02:00:00:00:00:AA","ips":["10.1.0.5/24","fd00::5"],"default-route":["10.1.0.1"]},{"name":"mgmt"}]`,
			want: []Selection{
				{Namespace: "other", Name: "dp", Interface: "dpdk0", MAC: "02:00:00:00:00:aa", IPs: []string{"10.1.0.5", "fd00::5"}, DefaultRoute: []string{"10.1.0.1"}},
				{Namespace: "pods", Name: "mgmt"},
			}},
		{name: "json ignores unknown fields", value: `[{"name":"a","bandwidth":{"ingressRate":1}}]`, want: []Selection{{Namespace: "pods", Name: "a"}}},
		{name: "json keeps cni-args", value: `[{"name":"a","cni-args":{"x":1}}]`, want: []Selection{{Namespace: "pods", Name: "a", CNIArgs: []byte(`{"x":1}`)}}},
		{name: "json malformed", value: `[{"name":"a"`, wantErr: "not a valid JSON list"},
		{name: "json trailing", value: `[{"name":"a"}] x`, wantErr: "unexpected data"},
		{name: "json not a list", value: `{"name":"a"}`, wantErr: "[0].name"},
		{name: "json no name", value: `[{"interface":"x"}]`, wantErr: "[0].name: network name is empty"},
		{name: "json bad mac", value: `[{"name":"a","mac":"zz"}]`, wantErr: `[0].mac: "zz" is not`},
		{name: "json multicast mac", value: `[{"name":"a","mac":"01:00:5e:00:00:01"}]`, wantErr: "multicast"},
		{name: "json bad ip", value: `[{"name":"a","ips":["10.0.0.300"]}]`, wantErr: `[0].ips[0]: "10.0.0.300"`},
		{name: "json bad gateway", value: `[{"name":"a","default-route":["gw"]}]`, wantErr: "[0].default-route[0]"},
		{name: "json wrong type", value: `[{"name":1}]`, wantErr: "not a valid JSON list"},
		{name: "duplicate ifname", value: "a@x,b@x", wantErr: `[1].interface: interface "x" is requested twice`},
		{name: "bad ifname chars", value: `[{"name":"a","interface":"et h0"}]`, wantErr: "whitespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSelections(tt.value, "pods")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSelections(%q) error = %v, want one containing %q", tt.value, err, tt.wantErr)
				}
				if !IsSpecError(err) {
					t.Fatalf("error %v is not a SpecError", err)
				}
				if !strings.Contains(err.Error(), "k8s.v1.cni.cncf.io/networks") {
					t.Fatalf("error %q does not name the annotation", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSelections(%q): %v", tt.value, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseSelections(%q)\n got %+v\nwant %+v", tt.value, got, tt.want)
			}
		})
	}
}

func FuzzParseSelections(f *testing.F) {
	for _, s := range []string{"a", "ns/a@net1,b", `[{"name":"a","mac":"02:00:00:00:00:01","ips":["10.0.0.1/24"]}]`, "[", "a@", "@", "/", `[{"name":"a","default-route":["::1"]}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		sels, err := ParseSelections(v, "default")
		if err != nil {
			if !IsSpecError(err) {
				t.Fatalf("error %v is not a SpecError", err)
			}
			return
		}
		for _, s := range sels {
			if s.Name == "" || s.Namespace == "" {
				t.Fatalf("accepted a selection without name or namespace: %+v from %q", s, v)
			}
			if s.Interface != "" && ValidateIfName(s.Interface) != nil {
				t.Fatalf("accepted bad interface name %q", s.Interface)
			}
		}
	})
}
