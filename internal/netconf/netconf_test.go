package netconf

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const (
	subnet = "2d6e7a3c-0b1f-4a4d-9e5c-3f4a5b6c7d8e"
	sgA    = "0b4c5e1a-8f9d-4e2b-9c3a-1d2e3f4a5b6c"
	sgB    = "1c5d6f2b-9a0e-4f3c-8d4b-2e3f4a5b6c7d"
)

func TestKuryrDecodesFromAConfig(t *testing.T) {
	t.Parallel()
	var c struct {
		Name string `json:"name"`
		Kuryr
	}
	raw := `{"name":"dp","type":"kuryr-cni","driver":"nested-dpdk","subnetId":"` + subnet +
		`","securityGroups":["` + sgA + `"],"dpdkDriver":"vfio-pci","mtu":1450}`
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatal(err)
	}
	want := Kuryr{Driver: DriverNestedDPDK, SubnetID: subnet, SecurityGroups: []string{sgA}, DPDKDriver: DPDKDriverVFIO, MTU: 1450}
	if c.Name != "dp" || c.Driver != want.Driver || c.SubnetID != want.SubnetID || len(c.SecurityGroups) != 1 ||
		c.SecurityGroups[0] != sgA || c.DPDKDriver != want.DPDKDriver || c.MTU != want.MTU {
		t.Fatalf("decoded %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	t.Parallel()
	good := Kuryr{Driver: DriverNestedDPDK, SubnetID: subnet, SecurityGroups: []string{sgA, sgB}, DPDKDriver: DPDKDriverUIO, MTU: 1500}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid fields: %v", err)
	}
	if err := (Kuryr{}).Validate(); err != nil {
		t.Fatalf("no fields set (primary mode): %v", err)
	}
	tests := []struct {
		name  string
		edit  func(k *Kuryr)
		field string
		text  string
	}{
		{"unknown driver", func(k *Kuryr) { k.Driver = "nested-sriov" }, "driver", `unknown driver "nested-sriov"`},
		{"subnet not a UUID", func(k *Kuryr) { k.SubnetID = "sub-1" }, "subnetId", `"sub-1" is not a Neutron subnet ID`},
		{"subnet with a path", func(k *Kuryr) { k.SubnetID = "a/../b" }, "subnetId", "is not a Neutron subnet ID"},
		{"unknown DPDK driver", func(k *Kuryr) { k.DPDKDriver = "igb_uio" }, "dpdkDriver", `unknown DPDK driver "igb_uio"`},
		{"DPDK driver on vlan", func(k *Kuryr) { k.Driver = DriverNestedVLAN }, "dpdkDriver", "nested-dpdk only"},
		{"empty security group", func(k *Kuryr) { k.SecurityGroups = []string{""} }, "securityGroups[0]", "not a Neutron security group ID"},
		{"security group by name", func(k *Kuryr) { k.SecurityGroups = []string{sgA, "default"} }, "securityGroups[1]", `"default"`},
		{"security group twice", func(k *Kuryr) { k.SecurityGroups = []string{sgA, sgA} }, "securityGroups[1]", "listed twice"},
		{"mtu too small", func(k *Kuryr) { k.MTU = 67 }, "mtu", "outside 68..65535"},
		{"mtu too big", func(k *Kuryr) { k.MTU = 65536 }, "mtu", "outside 68..65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k := good
			k.SecurityGroups = append([]string(nil), good.SecurityGroups...)
			tt.edit(&k)
			err := k.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Reason, tt.text) {
				t.Fatalf("Validate = field %q reason %q, want field %q and a reason containing %q", fe.Field, fe.Reason, tt.field, tt.text)
			}
			if err.Error() != tt.field+": "+fe.Reason {
				t.Fatalf("Error() = %q does not start with the field", err)
			}
		})
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"nested-vlan", "nested-macvlan", "nested-dpdk"} {
		if !ValidDriver(d) {
			t.Errorf("ValidDriver(%q) = false", d)
		}
	}
	for _, d := range []string{"", "nested-sriov", "NESTED-VLAN"} {
		if ValidDriver(d) {
			t.Errorf("ValidDriver(%q) = true", d)
		}
	}
	if !ValidDPDKDriver("uio_pci_generic") || !ValidDPDKDriver("vfio-pci") || ValidDPDKDriver("igb_uio") || ValidDPDKDriver("") {
		t.Error("ValidDPDKDriver misjudges")
	}
	if DPDKDrivers()[0] != DPDKDriverUIO {
		t.Errorf("the default DPDK driver is not listed first: %v", DPDKDrivers())
	}
	if PluginType != "kuryr-cni" || KuryrConfigAnnotation != "openstack.org/kuryr-config" {
		t.Error("plugin type or annotation renamed: configurations in the field would stop working")
	}
}

func TestParseKuryrConfig(t *testing.T) {
	t.Parallel()
	k, err := ParseKuryrConfig(`{"subnetId":"` + subnet + `","driverType":"nested-dpdk"}`)
	if err != nil || k.SubnetID != subnet || k.DriverType != DriverNestedDPDK {
		t.Fatalf("ParseKuryrConfig = %+v, %v", k, err)
	}
	if _, err := ParseKuryrConfig(`subnet=1`); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("ParseKuryrConfig of garbage = %v, want a JSON error", err)
	}
}

func TestValidPCIAddress(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"0000:00:05.0", "0000:01:1f.7", "abcd:ef:00.3"} {
		if !ValidPCIAddress(a) {
			t.Errorf("ValidPCIAddress(%q) = false", a)
		}
	}
	for _, a := range []string{"", "00:05.0", "0000:00:05.8", "0000:00:20.0", "0000:00:0A.0", "0000:00:05.0\n", "../0000:00:05.0"} {
		if ValidPCIAddress(a) {
			t.Errorf("ValidPCIAddress(%q) = true", a)
		}
	}
}
