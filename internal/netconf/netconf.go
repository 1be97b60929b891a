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
	return nil
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
