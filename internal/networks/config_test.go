package networks

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

func TestConfigFromNAD(t *testing.T) {
	t.Parallel()
	kc := v1alpha1.KuryrConfigAnnotation
	tests := []struct {
		name    string
		ann     map[string]string
		config  string
		want    Config
		wantErr string
	}{
		{name: "spec.config", config: `{"cniVersion":"1.0.0","name":"dp","type":"kuryr-cni","driver":"nested-dpdk","subnetId":"11111111-1111-4111-8111-111111111111","securityGroups":["0b4c5e1a-8f9d-4e2b-9c3a-1d2e3f4a5b6c"],"dpdkDriver":"vfio-pci"}`,
			want: Config{Driver: v1alpha1.DriverNestedDPDK, SubnetID: "11111111-1111-4111-8111-111111111111", SecurityGroups: []string{"0b4c5e1a-8f9d-4e2b-9c3a-1d2e3f4a5b6c"}, DPDKDriver: "vfio-pci"}},
		{name: "conflist", config: `{"cniVersion":"1.0.0","name":"dp","plugins":[{"type":"kuryr-cni","driver":"nested-vlan","subnetId":"5a5a5a5a-0000-4000-8000-000000000001"}]}`,
			want: Config{Driver: v1alpha1.DriverNestedVLAN, SubnetID: "5a5a5a5a-0000-4000-8000-000000000001"}},
		{name: "kuryr-kubernetes annotation", ann: map[string]string{kc: `{"subnetId":"22222222-2222-4222-8222-222222222222","driverType":"nested-dpdk"}`},
			want: Config{Driver: v1alpha1.DriverNestedDPDK, SubnetID: "22222222-2222-4222-8222-222222222222"}},
		{name: "kuryr-kubernetes annotation with foreign config", ann: map[string]string{kc: `{"subnetId":"22222222-2222-4222-8222-222222222222"}`}, config: `{"cniVersion":"0.3.1","name":"x","type":"kuryr-cni-legacy"}`,
			want: Config{SubnetID: "22222222-2222-4222-8222-222222222222"}},
		{name: "both agree", ann: map[string]string{kc: `{"subnetId":"5a5a5a5a-0000-4000-8000-000000000001","driverType":"nested-macvlan"}`}, config: `{"type":"kuryr-cni","subnetId":"5a5a5a5a-0000-4000-8000-000000000001","driver":"nested-macvlan"}`,
			want: Config{Driver: v1alpha1.DriverNestedMACVLAN, SubnetID: "5a5a5a5a-0000-4000-8000-000000000001"}},
		{name: "both disagree", ann: map[string]string{kc: `{"subnetId":"5a5a5a5a-0000-4000-8000-000000000002"}`}, config: `{"type":"kuryr-cni","subnetId":"5a5a5a5a-0000-4000-8000-000000000001"}`, wantErr: "subnetId: \"5a5a5a5a-0000-4000-8000-000000000002\" disagrees"},
		{name: "not ours", config: `{"type":"macvlan","master":"eth0"}`, wantErr: "not a kuryr-dpdk network"},
		{name: "nothing", wantErr: "not a kuryr-dpdk network"},
		{name: "bad json", config: `{"type":`, wantErr: "spec.config: not valid JSON"},
		{name: "bad annotation", ann: map[string]string{kc: `subnet=1`}, wantErr: "openstack.org/kuryr-config]: not valid JSON"},
		{name: "unknown driver", config: `{"type":"kuryr-cni","driver":"nested-sriov","subnetId":"5a5a5a5a-0000-4000-8000-000000000001"}`, wantErr: `driver: unknown driver "nested-sriov"`},
		{name: "no subnet", config: `{"type":"kuryr-cni","driver":"nested-vlan"}`, wantErr: "subnetId: the Neutron subnet ID is missing"},
		{name: "bad subnet", config: `{"type":"kuryr-cni","subnetId":"a/../b"}`, wantErr: "is not a Neutron subnet ID"},
		{name: "bad dpdk driver", config: `{"type":"kuryr-cni","driver":"nested-dpdk","subnetId":"5a5a5a5a-0000-4000-8000-000000000001","dpdkDriver":"igb_uio"}`, wantErr: `unknown DPDK driver "igb_uio"`},
		{name: "dpdk driver on vlan", config: `{"type":"kuryr-cni","driver":"nested-vlan","subnetId":"5a5a5a5a-0000-4000-8000-000000000001","dpdkDriver":"vfio-pci"}`, wantErr: "nested-dpdk only"},
		{name: "empty sg", config: `{"type":"kuryr-cni","subnetId":"5a5a5a5a-0000-4000-8000-000000000001","securityGroups":[""]}`, wantErr: "securityGroups[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ConfigFromNAD("ns/net", tt.ann, tt.config)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "NetworkAttachmentDefinition ns/net") {
					t.Fatalf("error = %v, want one naming the NAD and containing %q", err, tt.wantErr)
				}
				if !IsSpecError(err) {
					t.Fatalf("error %v is not a SpecError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzConfigFromNAD(f *testing.F) {
	f.Add(`{"type":"kuryr-cni","driver":"nested-dpdk","subnetId":"5a5a5a5a-0000-4000-8000-000000000001","dpdkDriver":"vfio-pci"}`, `{"subnetId":"5a5a5a5a-0000-4000-8000-000000000001","driverType":"nested-dpdk"}`)
	f.Add(`{"plugins":[{"type":"kuryr-cni","subnetId":"5a5a5a5a-0000-4000-8000-000000000009"}]}`, ``)
	f.Add(`{"plugins":[1]}`, `{"subnetId":1}`)
	f.Fuzz(func(t *testing.T, config, ann string) {
		anns := map[string]string{}
		if ann != "" {
			anns[v1alpha1.KuryrConfigAnnotation] = ann
		}
		cfg, err := ConfigFromNAD("ns/n", anns, config)
		if err != nil {
			if !IsSpecError(err) {
				t.Fatalf("error %v is not a SpecError", err)
			}
			return
		}
		if cfg.SubnetID == "" || (cfg.Driver != "" && !cfg.Driver.Valid()) {
			t.Fatalf("accepted invalid config %+v", cfg)
		}
	})
}
