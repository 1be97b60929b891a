package networks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
)

// Config is what backs one network: how its interfaces are made.
type Config struct {
	// Driver is empty when the NAD leaves it to the node's default driver
	// (kuryr-kubernetes' annotation without driverType).
	Driver         v1alpha1.Driver
	SubnetID       string
	SecurityGroups []string
	// DPDKDriver is the kernel driver for nested-dpdk devices ("" = default).
	DPDKDriver string
	// MTU is spec.config's mtu, 0 when it gives none (the Neutron
	// network's).
	MTU int
	// PortSecurityEnabled and AllowedAddressPairs are the VNF options of
	// spec.config (docs/vnf.md).
	PortSecurityEnabled *bool
	AllowedAddressPairs []netconf.AddressPair
}

// cniConfig is a CNI network config (what a NAD's spec.config, and Multus,
// carry) as far as this package reads it: its type, the kuryr fields, and
// the plugins of a conflist.
type cniConfig struct {
	Type string `json:"type"`
	netconf.Kuryr
	// Plugins is set when spec.config is a conflist.
	Plugins []json.RawMessage `json:"plugins,omitempty"`
}

// ConfigFromNAD reads what backs a NetworkAttachmentDefinition named ref
// (namespace/name), given its annotations and spec.config. spec.config of
// type kuryr-cni (alone or as a conflist's first plugin) and the
// openstack.org/kuryr-config annotation are both accepted; when both set a
// field they must agree.
func ConfigFromNAD(ref string, annotations map[string]string, specConfig string) (Config, error) {
	obj := "NetworkAttachmentDefinition " + ref
	var cfg netconf.Kuryr
	haveCNI, err := fromSpecConfig(obj, specConfig, &cfg)
	if err != nil {
		return Config{}, err
	}
	ann, haveAnn := annotations[netconf.KuryrConfigAnnotation]
	if haveAnn {
		if err := mergeKuryrAnnotation(obj, ann, &cfg); err != nil {
			return Config{}, err
		}
	}
	if !haveCNI && !haveAnn {
		return Config{}, &SpecError{Object: obj, Field: "spec.config.type",
			Reason: fmt.Sprintf("not a kuryr-dpdk network: want spec.config with \"type\": %q or the %s annotation", netconf.PluginType, netconf.KuryrConfigAnnotation)}
	}
	if err := validate(obj, cfg); err != nil {
		return Config{}, err
	}
	return Config{Driver: v1alpha1.Driver(cfg.Driver), SubnetID: cfg.SubnetID, SecurityGroups: cfg.SecurityGroups,
		DPDKDriver: cfg.DPDKDriver, MTU: cfg.MTU, PortSecurityEnabled: cfg.PortSecurityEnabled, AllowedAddressPairs: cfg.AllowedAddressPairs}, nil
}

// fromSpecConfig fills cfg from spec.config when it is a kuryr-cni config.
// It reports whether it was one.
func fromSpecConfig(obj, specConfig string, cfg *netconf.Kuryr) (bool, error) {
	if strings.TrimSpace(specConfig) == "" {
		return false, nil
	}
	var c cniConfig
	dec := json.NewDecoder(bytes.NewReader([]byte(specConfig)))
	if err := dec.Decode(&c); err != nil {
		return false, &SpecError{Object: obj, Field: "spec.config", Reason: fmt.Sprintf("not valid JSON: %v", err)}
	}
	if c.Type == "" && len(c.Plugins) > 0 {
		if err := json.Unmarshal(c.Plugins[0], &c); err != nil {
			return false, &SpecError{Object: obj, Field: "spec.config.plugins[0]", Reason: fmt.Sprintf("not valid JSON: %v", err)}
		}
	}
	if c.Type != netconf.PluginType {
		return false, nil
	}
	*cfg = c.Kuryr
	return true, nil
}

func mergeKuryrAnnotation(obj, ann string, cfg *netconf.Kuryr) error {
	field := "metadata.annotations[" + netconf.KuryrConfigAnnotation + "]"
	k, err := netconf.ParseKuryrConfig(ann)
	if err != nil {
		return &SpecError{Object: obj, Field: field, Reason: err.Error()}
	}
	if k.SubnetID != "" {
		if cfg.SubnetID != "" && cfg.SubnetID != k.SubnetID {
			return &SpecError{Object: obj, Field: field + ".subnetId",
				Reason: fmt.Sprintf("%q disagrees with spec.config subnetId %q; keep one", k.SubnetID, cfg.SubnetID)}
		}
		cfg.SubnetID = k.SubnetID
	}
	if k.DriverType != "" {
		if cfg.Driver != "" && cfg.Driver != k.DriverType {
			return &SpecError{Object: obj, Field: field + ".driverType",
				Reason: fmt.Sprintf("%q disagrees with spec.config driver %q; keep one", k.DriverType, cfg.Driver)}
		}
		cfg.Driver = k.DriverType
	}
	return nil
}

// validate applies netconf's rules, and this package's own: a network needs
// a subnet.
func validate(obj string, c netconf.Kuryr) error {
	if err := c.Validate(); err != nil {
		var fe *netconf.FieldError
		if errors.As(err, &fe) {
			return &SpecError{Object: obj, Field: fe.Field, Reason: fe.Reason}
		}
		return &SpecError{Object: obj, Reason: err.Error()}
	}
	if c.SubnetID == "" {
		return &SpecError{Object: obj, Field: "subnetId", Reason: "the Neutron subnet ID is missing"}
	}
	return nil
}
