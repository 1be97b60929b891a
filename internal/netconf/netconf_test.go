package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
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
		{"port security off with security groups", func(k *Kuryr) { k.PortSecurityEnabled = ptr(false) }, "portSecurityEnabled", "securityGroups are set"},
		{"port security off with address pairs", func(k *Kuryr) {
			k.SecurityGroups, k.PortSecurityEnabled = nil, ptr(false)
			k.AllowedAddressPairs = []AddressPair{{IPAddress: "10.0.0.0/24"}}
		}, "portSecurityEnabled", "allowedAddressPairs are set"},
		{"port security on macvlan", func(k *Kuryr) {
			k.Driver, k.DPDKDriver, k.SecurityGroups, k.PortSecurityEnabled = DriverNestedMACVLAN, "", nil, ptr(false)
		}, "portSecurityEnabled", "node VM's port"},
		{"address pairs on macvlan", func(k *Kuryr) {
			k.Driver, k.DPDKDriver, k.AllowedAddressPairs = DriverNestedMACVLAN, "", []AddressPair{{IPAddress: "10.0.0.9"}}
		}, "allowedAddressPairs", "node VM's port"},
		{"address pair not an IP", func(k *Kuryr) { k.AllowedAddressPairs = []AddressPair{{IPAddress: "10.0.0.9"}, {IPAddress: "any"}} },
			"allowedAddressPairs[1].ipAddress", `"any" is not an IP address or CIDR`},
		{"address pair without an IP", func(k *Kuryr) { k.AllowedAddressPairs = []AddressPair{{MACAddress: "fa:16:3e:00:00:01"}} },
			"allowedAddressPairs[0].ipAddress", `"" is not an IP address`},
		{"address pair multicast MAC", func(k *Kuryr) {
			k.AllowedAddressPairs = []AddressPair{{IPAddress: "10.0.0.9", MACAddress: "01:00:5e:00:00:01"}}
		}, "allowedAddressPairs[0].macAddress", "not a unicast Ethernet MAC"},
		{"address pair twice", func(k *Kuryr) {
			k.AllowedAddressPairs = []AddressPair{{IPAddress: "10.0.0.9"}, {IPAddress: "10.0.0.8"}, {IPAddress: "10.0.0.9"}}
		}, "allowedAddressPairs[2]", "repeats allowedAddressPairs[0]"},
		{"too many address pairs", func(k *Kuryr) {
			for i := range MaxAllowedAddressPairs + 1 {
				k.AllowedAddressPairs = append(k.AllowedAddressPairs, AddressPair{IPAddress: fmt.Sprintf("10.0.0.%d", i)})
			}
		}, "allowedAddressPairs", "at most 10"},
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

func ptr[T any](v T) *T { return &v }

// A VNF's data-plane network: port security off, or allowed address pairs,
// decoded from a configuration and valid as Neutron would take them.
func TestVNFOptionsDecodeAndValidate(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`{"driver":"nested-dpdk","subnetId":"` + subnet + `","portSecurityEnabled":false}`,
		`{"driver":"nested-vlan","subnetId":"` + subnet + `","securityGroups":["` + sgA + `"],` +
			`"allowedAddressPairs":[{"ipAddress":"0.0.0.0/0"},{"ipAddress":"10.1.0.5","macAddress":"fa:16:3e:00:00:05"},{"ipAddress":"2001:db8::/64"}]}`,
	} {
		var k Kuryr
		if err := json.Unmarshal([]byte(raw), &k); err != nil {
			t.Fatal(err)
		}
		if err := k.Validate(); err != nil {
			t.Errorf("Validate(%s) = %v", raw, err)
		}
		if strings.Contains(raw, "portSecurityEnabled") != k.PortSecurityOff() {
			t.Errorf("%s: PortSecurityOff = %v", raw, k.PortSecurityOff())
		}
		if strings.Contains(raw, "allowedAddressPairs") && (len(k.AllowedAddressPairs) != 3 || k.AllowedAddressPairs[1].MACAddress != "fa:16:3e:00:00:05") {
			t.Errorf("%s: pairs %+v", raw, k.AllowedAddressPairs)
		}
	}
	if (Kuryr{PortSecurityEnabled: ptr(true)}).PortSecurityOff() || (Kuryr{}).PortSecurityOff() {
		t.Error("PortSecurityOff with port security on or unset")
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
