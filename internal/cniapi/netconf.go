package cniapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// PluginType is the "type" of this project's network configurations.
const PluginType = "kuryr-cni"

// Drivers a network configuration may name.
const (
	DriverNestedVLAN    = "nested-vlan"
	DriverNestedMACVLAN = "nested-macvlan"
	DriverNestedDPDK    = "nested-dpdk"
)

// DPDK drivers a nested-dpdk network may bind its device to.
const (
	DPDKDriverUIO  = "uio_pci_generic"
	DPDKDriverVFIO = "vfio-pci"
)

// Runtime config keys this plugin reads (declared as capabilities).
const (
	CapDeviceInfoFile   = "CNIDeviceInfoFile"
	CapPodAnnotations   = "io.kubernetes.cri.pod-annotations"
	ValidAttachmentsKey = "cni.dev/valid-attachments"
)

// SupportedVersions are the CNI spec versions the shim and daemon speak.
var SupportedVersions = []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// NetConf is the network configuration of type kuryr-cni: what the runtime
// (primary mode) or Multus (delegate mode, from a NetworkAttachmentDefinition)
// writes on the plugin's stdin.
type NetConf struct {
	CNIVersion   string          `json:"cniVersion"`
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`

	// DaemonSocket is the daemon's unix socket; DefaultSocketPath if empty.
	DaemonSocket string `json:"daemonSocket,omitempty"`
	// Driver is nested-vlan, nested-macvlan or nested-dpdk. Empty in primary
	// mode means the node's default nested driver.
	Driver string `json:"driver,omitempty"`
	// SubnetID is the Neutron subnet the port comes from.
	SubnetID string `json:"subnetId,omitempty"`
	// DPDKDriver is uio_pci_generic (default) or vfio-pci; nested-dpdk only.
	DPDKDriver string `json:"dpdkDriver,omitempty"`
	// SecurityGroups are Neutron security group IDs for the port.
	SecurityGroups []string `json:"securityGroups,omitempty"`
	// MTU of the interface; 0 takes the Neutron network's.
	MTU int `json:"mtu,omitempty"`

	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitzero"`

	// RawPrevResult is the prevResult given on DEL and CHECK, as sent.
	RawPrevResult json.RawMessage `json:"prevResult,omitempty"`
	// PrevResult is RawPrevResult parsed and converted to the current
	// result version; nil when there was none.
	PrevResult *current.Result `json:"-"`

	// ValidAttachments is what GC must keep.
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
}

// RuntimeConfig is the part of the configuration the runtime injects per
// call for the capabilities the plugin declares.
type RuntimeConfig struct {
	// DeviceInfoFile is where to write the NPWG device-info file (Multus).
	DeviceInfoFile string `json:"CNIDeviceInfoFile,omitempty"`
	// PodAnnotations are every annotation of the pod (containerd, CRI-O).
	PodAnnotations map[string]string `json:"io.kubernetes.cri.pod-annotations,omitempty"`
}

// maxConfigLen bounds a configuration; pod annotations can be large.
const maxConfigLen = 1 << 20

// maxSocketPath is the room in sockaddr_un.sun_path, less the final NUL.
const maxSocketPath = 107

var neutronID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
var networkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// ParseNetConf decodes and validates a kuryr-cni network configuration. Any
// problem is a *types.Error with code 7 whose message names the field.
func ParseNetConf(data []byte) (*NetConf, *types.Error) {
	if len(data) > maxConfigLen {
		return nil, badField("config", "longer than %d bytes", maxConfigLen)
	}
	var c NetConf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, jsonError("config", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// jsonError turns a decode error into a code-7 error naming the field.
func jsonError(what string, err error) *types.Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return badField(te.Field, "%s must be %s, not a JSON %s", te.Field, te.Type, te.Value)
	}
	return badField(what, "not valid JSON: %v", err)
}

func (c *NetConf) validate() *types.Error {
	if c.CNIVersion == "" {
		return badField("cniVersion", "missing")
	}
	if !slices.Contains(SupportedVersions, c.CNIVersion) {
		return badField("cniVersion", "%q is not one of %s", c.CNIVersion, strings.Join(SupportedVersions, ", "))
	}
	if c.Name == "" {
		return badField("name", "missing")
	}
	if !networkName.MatchString(c.Name) {
		return badField("name", "%q has characters other than letters, digits, _ . -", c.Name)
	}
	if c.Type != PluginType {
		return badField("type", "%q, want %q", c.Type, PluginType)
	}
	if c.DaemonSocket != "" {
		if err := checkPath("daemonSocket", c.DaemonSocket); err != nil {
			return err
		}
		if len(c.DaemonSocket) > maxSocketPath {
			return badField("daemonSocket", "longer than %d bytes (a unix socket path limit)", maxSocketPath)
		}
	}
	switch c.Driver {
	case "", DriverNestedVLAN, DriverNestedMACVLAN, DriverNestedDPDK:
	default:
		return badField("driver", "%q is not one of %s, %s, %s", c.Driver, DriverNestedVLAN, DriverNestedMACVLAN, DriverNestedDPDK)
	}
	if c.SubnetID != "" && !neutronID.MatchString(c.SubnetID) {
		return badField("subnetId", "%q is not a Neutron ID (a UUID)", c.SubnetID)
	}
	switch c.DPDKDriver {
	case "":
	case DPDKDriverUIO, DPDKDriverVFIO:
		if c.Driver != DriverNestedDPDK && c.Driver != "" {
			return badField("dpdkDriver", "set for driver %q; it applies to %s only", c.Driver, DriverNestedDPDK)
		}
	default:
		return badField("dpdkDriver", "%q is not one of %s, %s", c.DPDKDriver, DPDKDriverUIO, DPDKDriverVFIO)
	}
	for i, sg := range c.SecurityGroups {
		field := fmt.Sprintf("securityGroups[%d]", i)
		if !neutronID.MatchString(sg) {
			return badField(field, "%q is not a Neutron ID (a UUID)", sg)
		}
		if slices.Contains(c.SecurityGroups[:i], sg) {
			return badField(field, "%s is listed twice", sg)
		}
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return badField("mtu", "%d is outside 68..65535", c.MTU)
	}
	if f := c.RuntimeConfig.DeviceInfoFile; f != "" {
		if err := checkPath("runtimeConfig.CNIDeviceInfoFile", f); err != nil {
			return err
		}
	}
	return c.parsePrevResult()
}

// checkPath accepts absolute, clean paths without NUL bytes.
func checkPath(field, p string) *types.Error {
	if !filepath.IsAbs(p) {
		return badField(field, "%q is not an absolute path", p)
	}
	if filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
		return badField(field, "%q is not a clean path", p)
	}
	return nil
}

func (c *NetConf) parsePrevResult() *types.Error {
	raw := bytes.TrimSpace(c.RawPrevResult)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		c.RawPrevResult = nil
		return nil
	}
	// Results before 1.0.0 may not carry their version: they are in the
	// configuration's version.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return jsonError("prevResult", err)
	}
	v := c.CNIVersion
	if rv, ok := m["cniVersion"]; ok {
		if err := json.Unmarshal(rv, &v); err != nil {
			return badField("prevResult.cniVersion", "not a string")
		}
	} else {
		m["cniVersion"], _ = json.Marshal(v)
		raw, _ = json.Marshal(m)
	}
	r, err := version.NewResult(v, raw)
	if err != nil {
		return badField("prevResult", "%v", err)
	}
	cur, err := current.NewResultFromResult(r)
	if err != nil {
		return badField("prevResult", "%v", err)
	}
	c.PrevResult = cur
	return nil
}
