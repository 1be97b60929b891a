package networks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
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
}

// cniConfig holds the kuryr-dpdk fields of a CNI network config of type
// kuryr-cni (what a NAD's spec.config, and Multus, carry).
type cniConfig struct {
	Type           string   `json:"type"`
	Driver         string   `json:"driver,omitempty"`
	SubnetID       string   `json:"subnetId,omitempty"`
	SecurityGroups []string `json:"securityGroups,omitempty"`
	DPDKDriver     string   `json:"dpdkDriver,omitempty"`
	// Plugins is set when spec.config is a conflist.
	Plugins []json.RawMessage `json:"plugins,omitempty"`
}

// kuryrConfig is kuryr-kubernetes' openstack.org/kuryr-config annotation.
type kuryrConfig struct {
	SubnetID   string `json:"subnetId"`
	DriverType string `json:"driverType,omitempty"`
}

// ConfigFromNAD reads what backs a NetworkAttachmentDefinition named ref
// (namespace/name), given its annotations and spec.config. spec.config of
// type kuryr-cni (alone or as a conflist's first plugin) and the
// openstack.org/kuryr-config annotation are both accepted; when both set a
// field they must agree.
func ConfigFromNAD(ref string, annotations map[string]string, specConfig string) (Config, error) {
	obj := "NetworkAttachmentDefinition " + ref
	var cfg Config
	haveCNI, err := fromSpecConfig(obj, specConfig, &cfg)
	if err != nil {
		return Config{}, err
	}
	ann, haveAnn := annotations[v1alpha1.KuryrConfigAnnotation]
	if haveAnn {
		if err := mergeKuryrAnnotation(obj, ann, &cfg); err != nil {
			return Config{}, err
		}
	}
	if !haveCNI && !haveAnn {
		return Config{}, &SpecError{Object: obj, Field: "spec.config.type",
			Reason: fmt.Sprintf("not a kuryr-dpdk network: want spec.config with \"type\": %q or the %s annotation", v1alpha1.CNIType, v1alpha1.KuryrConfigAnnotation)}
	}
	if err := cfg.validate(obj); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// fromSpecConfig fills cfg from spec.config when it is a kuryr-cni config.
// It reports whether it was one.
func fromSpecConfig(obj, specConfig string, cfg *Config) (bool, error) {
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
	if c.Type != v1alpha1.CNIType {
		return false, nil
	}
	*cfg = Config{Driver: v1alpha1.Driver(c.Driver), SubnetID: c.SubnetID, SecurityGroups: c.SecurityGroups, DPDKDriver: c.DPDKDriver}
	return true, nil
}

func mergeKuryrAnnotation(obj, ann string, cfg *Config) error {
	field := "metadata.annotations[" + v1alpha1.KuryrConfigAnnotation + "]"
	var k kuryrConfig
	if err := json.Unmarshal([]byte(ann), &k); err != nil {
		return &SpecError{Object: obj, Field: field, Reason: fmt.Sprintf(`not valid JSON (want {"subnetId": "...", "driverType": "nested-dpdk"}): %v`, err)}
	}
	if k.SubnetID != "" {
		if cfg.SubnetID != "" && cfg.SubnetID != k.SubnetID {
			return &SpecError{Object: obj, Field: field + ".subnetId",
				Reason: fmt.Sprintf("%q disagrees with spec.config subnetId %q; keep one", k.SubnetID, cfg.SubnetID)}
		}
		cfg.SubnetID = k.SubnetID
	}
	if k.DriverType != "" {
		d := v1alpha1.Driver(k.DriverType)
		if cfg.Driver != "" && cfg.Driver != d {
			return &SpecError{Object: obj, Field: field + ".driverType",
				Reason: fmt.Sprintf("%q disagrees with spec.config driver %q; keep one", d, cfg.Driver)}
		}
		cfg.Driver = d
	}
	return nil
}

func (c Config) validate(obj string) error {
	if c.Driver != "" && !c.Driver.Valid() {
		return &SpecError{Object: obj, Field: "driver",
			Reason: fmt.Sprintf("unknown driver %q; use one of nested-vlan, nested-macvlan, nested-dpdk", c.Driver)}
	}
	if c.SubnetID == "" {
		return &SpecError{Object: obj, Field: "subnetId", Reason: "the Neutron subnet ID is missing"}
	}
	if strings.ContainsAny(c.SubnetID, " /?#\t\n") {
		return &SpecError{Object: obj, Field: "subnetId", Reason: fmt.Sprintf("%q is not a Neutron subnet ID", c.SubnetID)}
	}
	switch c.DPDKDriver {
	case "", v1alpha1.DPDKDriverUIOPCIGeneric, v1alpha1.DPDKDriverVFIOPCI:
	default:
		return &SpecError{Object: obj, Field: "dpdkDriver",
			Reason: fmt.Sprintf("unknown DPDK driver %q; use uio_pci_generic or vfio-pci", c.DPDKDriver)}
	}
	if c.DPDKDriver != "" && c.Driver != "" && c.Driver != v1alpha1.DriverNestedDPDK {
		return &SpecError{Object: obj, Field: "dpdkDriver", Reason: fmt.Sprintf("set for driver %q; it applies to nested-dpdk only", c.Driver)}
	}
	for i, sg := range c.SecurityGroups {
		if strings.TrimSpace(sg) == "" {
			return &SpecError{Object: obj, Field: fmt.Sprintf("securityGroups[%d]", i), Reason: "empty security group ID"}
		}
	}
	return nil
}
