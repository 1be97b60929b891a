// Package netconf is the one schema of a kuryr-cni network configuration:
// the plugin's type name, the driver and DPDK-driver names, the kuryr fields
// of the configuration and the one set of rules they obey, kuryr-kubernetes'
// openstack.org/kuryr-config annotation, and what a PCI address looks like.
// The controller (NetworkAttachmentDefinitions), the daemon and the CNI shim
// all read configurations through it. It imports the standard library only,
// so that the shim stays thin.
package netconf

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// PluginType is the "type" of this project's network configurations.
const PluginType = "kuryr-cni"

// Drivers a network configuration may name.
const (
	// DriverNestedVLAN: a Neutron trunk subport, a VLAN sub-interface of the
	// VM's NIC in the pod.
	DriverNestedVLAN = "nested-vlan"
	// DriverNestedMACVLAN: an allowed-address-pair on the VM's port, a
	// MACVLAN of the VM's NIC in the pod.
	DriverNestedMACVLAN = "nested-macvlan"
	// DriverNestedDPDK: a Neutron port hot-attached to the VM by Nova, whose
	// PCI device is bound to a DPDK driver for the pod.
	DriverNestedDPDK = "nested-dpdk"
)

// DPDK drivers a nested-dpdk device may be bound to.
const (
	DPDKDriverUIO  = "uio_pci_generic"
	DPDKDriverVFIO = "vfio-pci"
)

// Drivers lists the driver names, in the order the documentation gives them.
func Drivers() []string {
	return []string{DriverNestedVLAN, DriverNestedMACVLAN, DriverNestedDPDK}
}

// DPDKDrivers lists the DPDK driver names, the default first.
func DPDKDrivers() []string { return []string{DPDKDriverUIO, DPDKDriverVFIO} }

// ValidDriver reports whether d is one of Drivers.
func ValidDriver(d string) bool { return slices.Contains(Drivers(), d) }

// ValidDPDKDriver reports whether d is one of DPDKDrivers.
func ValidDPDKDriver(d string) bool { return slices.Contains(DPDKDrivers(), d) }

// Limits of an interface MTU.
const (
	MinMTU = 68
	MaxMTU = 65535
)

// Kuryr holds the kuryr fields of a kuryr-cni network configuration, as a
// NetworkAttachmentDefinition's spec.config, Multus or the runtime carry
// them. Embed it in a configuration struct to decode them.
type Kuryr struct {
	// Driver is nested-vlan, nested-macvlan or nested-dpdk. Empty means the
	// node's default nested driver (primary mode, or a kuryr-kubernetes
	// annotation without driverType).
	Driver string `json:"driver,omitempty"`
	// SubnetID is the Neutron subnet the port comes from (a UUID).
	SubnetID string `json:"subnetId,omitempty"`
	// SecurityGroups are Neutron security group IDs for the port (UUIDs).
	SecurityGroups []string `json:"securityGroups,omitempty"`
	// DPDKDriver is uio_pci_generic (default) or vfio-pci; nested-dpdk only.
	DPDKDriver string `json:"dpdkDriver,omitempty"`
	// MTU of the interface; 0 takes the Neutron network's.
	MTU int `json:"mtu,omitempty"`
	// PortSecurityEnabled false creates the network's ports with Neutron
	// port security off: no security groups and no anti-spoofing, so the
	// pod may send and receive traffic that is not its own (a VNF that
	// forwards). Nil leaves Neutron's default (on).
	PortSecurityEnabled *bool `json:"portSecurityEnabled,omitempty"`
	// AllowedAddressPairs are addresses (IP or CIDR), beyond the port's
	// own, that the network's ports may send from and receive for, with
	// port security on.
	AllowedAddressPairs []AddressPair `json:"allowedAddressPairs,omitempty"`
}

// AddressPair is an allowed address pair of a port: an IP address or CIDR,
// and the MAC that may use it ("" is the port's own).
type AddressPair struct {
	IPAddress  string `json:"ipAddress"`
	MACAddress string `json:"macAddress,omitempty"`
}

// MaxAllowedAddressPairs is Neutron's default limit of allowed address
// pairs per port (max_allowed_address_pair); it refuses more.
const MaxAllowedAddressPairs = 10

// PortSecurityOff reports whether k turns port security off.
func (k Kuryr) PortSecurityOff() bool {
	return k.PortSecurityEnabled != nil && !*k.PortSecurityEnabled
}

// FieldError says which field of a configuration is wrong and why.
type FieldError struct {
	// Field is the field's path, e.g. "subnetId" or "securityGroups[1]".
	Field string
	// Reason says what is wrong and what to write instead.
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func bad(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// neutronID is how Neutron spells its IDs: a UUID.
var neutronID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ValidNeutronID reports whether id has the form of a Neutron ID (a UUID).
func ValidNeutronID(id string) bool { return neutronID.MatchString(id) }

// Validate checks the fields that are set, one rule per field, and returns
// the first problem as a *FieldError. Whether a field must be set depends on
// who reads it (a NetworkAttachmentDefinition needs a subnet, the primary
// CNI's configuration has none), so that is the caller's rule.
func (k Kuryr) Validate() error {
	if k.Driver != "" && !ValidDriver(k.Driver) {
		return bad("driver", "unknown driver %q; use one of %s", k.Driver, strings.Join(Drivers(), ", "))
	}
	if k.SubnetID != "" && !ValidNeutronID(k.SubnetID) {
		return bad("subnetId", "%q is not a Neutron subnet ID (a UUID)", k.SubnetID)
	}
	if k.DPDKDriver != "" {
		if !ValidDPDKDriver(k.DPDKDriver) {
			return bad("dpdkDriver", "unknown DPDK driver %q; use %s", k.DPDKDriver, strings.Join(DPDKDrivers(), " or "))
		}
		if k.Driver != "" && k.Driver != DriverNestedDPDK {
			return bad("dpdkDriver", "set for driver %q; it applies to %s only", k.Driver, DriverNestedDPDK)
		}
	}
	for i, sg := range k.SecurityGroups {
		field := fmt.Sprintf("securityGroups[%d]", i)
		if !ValidNeutronID(sg) {
			return bad(field, "%q is not a Neutron security group ID (a UUID)", sg)
		}
		if slices.Contains(k.SecurityGroups[:i], sg) {
			return bad(field, "%s is listed twice", sg)
		}
	}
	if k.MTU != 0 && (k.MTU < MinMTU || k.MTU > MaxMTU) {
		return bad("mtu", "%d is outside %d..%d", k.MTU, MinMTU, MaxMTU)
	}
	return k.validatePortSecurity()
}

// validatePortSecurity checks the VNF options with Neutron's own rules: a
// port without port security takes neither security groups nor allowed
// address pairs. A nested-macvlan pod's traffic leaves through the node
// VM's port, not its own, so they would change nothing there.
func (k Kuryr) validatePortSecurity() error {
	if k.Driver == DriverNestedMACVLAN && (k.PortSecurityEnabled != nil || len(k.AllowedAddressPairs) > 0) {
		return bad(firstSet(k), "set for driver %s, whose traffic passes the node VM's port, not the pod's; use %s or %s",
			DriverNestedMACVLAN, DriverNestedVLAN, DriverNestedDPDK)
	}
	if k.PortSecurityOff() {
		if len(k.SecurityGroups) > 0 {
			return bad("portSecurityEnabled", "false while securityGroups are set; Neutron takes no security groups on a port without port security: drop one")
		}
		if len(k.AllowedAddressPairs) > 0 {
			return bad("portSecurityEnabled", "false while allowedAddressPairs are set; a port without port security lets every address through already: drop allowedAddressPairs")
		}
	}
	if len(k.AllowedAddressPairs) > MaxAllowedAddressPairs {
		return bad("allowedAddressPairs", "%d pairs; Neutron allows at most %d per port (use a CIDR for a range)", len(k.AllowedAddressPairs), MaxAllowedAddressPairs)
	}
	for i, ap := range k.AllowedAddressPairs {
		field := fmt.Sprintf("allowedAddressPairs[%d]", i)
		if !validIPOrCIDR(ap.IPAddress) {
			return bad(field+".ipAddress", "%q is not an IP address or CIDR", ap.IPAddress)
		}
		if ap.MACAddress != "" {
			hw, err := net.ParseMAC(ap.MACAddress)
			if err != nil || len(hw) != 6 || hw[0]&1 == 1 {
				return bad(field+".macAddress", "%q is not a unicast Ethernet MAC address (want aa:bb:cc:dd:ee:ff)", ap.MACAddress)
			}
		}
		for j, prev := range k.AllowedAddressPairs[:i] {
			if prev.IPAddress == ap.IPAddress && strings.EqualFold(prev.MACAddress, ap.MACAddress) {
				return bad(field, "repeats allowedAddressPairs[%d]", j)
			}
		}
	}
	return nil
}

func firstSet(k Kuryr) string {
	if k.PortSecurityEnabled != nil {
		return "portSecurityEnabled"
	}
	return "allowedAddressPairs"
}

func validIPOrCIDR(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// KuryrConfigAnnotation is kuryr-kubernetes' way of saying what backs a
// NetworkAttachmentDefinition: {"subnetId": ..., "driverType": ...}.
const KuryrConfigAnnotation = "openstack.org/kuryr-config"

// KuryrConfig is the value of the KuryrConfigAnnotation.
type KuryrConfig struct {
	SubnetID   string `json:"subnetId"`
	DriverType string `json:"driverType,omitempty"`
}

// ParseKuryrConfig decodes the KuryrConfigAnnotation's value. It checks the
// JSON only; the fields are checked with the rest of the configuration
// (see Kuryr.Validate).
func ParseKuryrConfig(value string) (KuryrConfig, error) {
	var k KuryrConfig
	if err := json.Unmarshal([]byte(value), &k); err != nil {
		return KuryrConfig{}, fmt.Errorf(`not valid JSON (want {"subnetId": "...", "driverType": "%s"}): %w`, DriverNestedDPDK, err)
	}
	return k, nil
}
