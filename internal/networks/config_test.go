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
		{name: "spec.config", config: `{"cniVersion":"1.0.0","name":"dp","type":"kuryr-cni","driver":"nested-dpdk","subnetId":"sub-1","securityGroups":["sg1"],"dpdkDriver":"vfio-pci"}`,
			want: Config{Driver: v1alpha1.DriverNestedDPDK, SubnetID: "sub-1", SecurityGroups: []string{"sg1"}, DPDKDriver: "vfio-pci"}},
		{name: "conflist", config: `{"cniVersion":"1.0.0","name":"dp","plugins":[{"type":"kuryr-cni","driver":"nested-vlan","subnetId":"s"}]}`,
			want: Config{Driver: v1alpha1.DriverNestedVLAN, SubnetID: "s"}},
		{name: "kuryr-kubernetes annotation", ann: map[string]string{kc: `{"subnetId":"sub-2","driverType":"nested-dpdk"}`},
			want: Config{Driver: v1alpha1.DriverNestedDPDK, SubnetID: "sub-2"}},
		{name: "kuryr-kubernetes annotation with foreign config", ann: map[string]string{kc: `{"subnetId":"sub-2"}`}, config: `{"cniVersion":"0.3.1","name":"x","type":"kuryr-cni-legacy"}`,
			want: Config{SubnetID: "sub-2"}},
		{name: "both agree", ann: map[string]string{kc: `{"subnetId":"s","driverType":"nested-macvlan"}`}, config: `{"type":"kuryr-cni","subnetId":"s","driver":"nested-macvlan"}`,
			want: Config{Driver: v1alpha1.DriverNestedMACVLAN, SubnetID: "s"}},
		{name: "both disagree", ann: map[string]string{kc: `{"subnetId":"s2"}`}, config: `{"type":"kuryr-cni","subnetId":"s"}`, wantErr: "subnetId: \"s2\" disagrees"},
		{name: "not ours", config: `{"type":"macvlan","master":"eth0"}`, wantErr: "not a kuryr-dpdk network"},
		{name: "nothing", wantErr: "not a kuryr-dpdk network"},
		{name: "bad json", config: `{"type":`, wantErr: "spec.config: not valid JSON"},
		{name: "bad annotation", ann: map[string]string{kc: `subnet=1`}, wantErr: "openstack.org/kuryr-config]: not valid JSON"},
		{name: "unknown driver", config: `{"type":"kuryr-cni","driver":"nested-sriov","subnetId":"s"}`, wantErr: `driver: unknown driver "nested-sriov"`},
		{name: "no subnet", config: `{"type":"kuryr-cni","driver":"nested-vlan"}`, wantErr: "subnetId: the Neutron subnet ID is missing"},
		{name: "bad subnet", config: `{"type":"kuryr-cni","subnetId":"a/../b"}`, wantErr: "is not a Neutron subnet ID"},
		{name: "bad dpdk driver", config: `{"type":"kuryr-cni","driver":"nested-dpdk","subnetId":"s","dpdkDriver":"igb_uio"}`, wantErr: `unknown DPDK driver "igb_uio"`},
		{name: "dpdk driver on vlan", config: `{"type":"kuryr-cni","driver":"nested-vlan","subnetId":"s","dpdkDriver":"vfio-pci"}`, wantErr: "nested-dpdk only"},
		{name: "empty sg", config: `{"type":"kuryr-cni","subnetId":"s","securityGroups":[""]}`, wantErr: "securityGroups[0]"},
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
	f.Add(`{"type":"kuryr-cni","driver":"nested-dpdk","subnetId":"s","dpdkDriver":"vfio-pci"}`, `{"subnetId":"s","driverType":"nested-dpdk"}`)
	f.Add(`{"plugins":[{"type":"kuryr-cni","subnetId":"x"}]}`, ``)
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
