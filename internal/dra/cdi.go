package dra

import (
	"fmt"
	"path/filepath"

	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
)

// prepared is one device of a claim, bound and ready for its container.
type prepared struct {
	request    string // the allocation result's request
	device     string // the device's name in the pool
	portID     string
	mac        string
	pciAddress string
	driver     string   // the DPDK driver it is bound to
	devNodes   []string // its device nodes, as the container sees them
	devInfo    string   // its NPWG device-info file on the host
	privileged bool     // the container must be privileged to use it
}

// cdiDeviceName is a device's name in its claim's CDI spec: the claim UID
// keeps names unique across claims, so a runtime's cached spec never
// answers for a newer claim.
func cdiDeviceName(claimUID string, index int) string {
	return fmt.Sprintf("%s-dev%d", claimUID, index)
}

// cdiID is the fully qualified CDI device ID the runtime is handed.
func cdiID(name string) string { return CDIKind + "=" + name }

// cdiSpecName is the file name of a claim's CDI spec.
func cdiSpecName(claimUID string) string { return DriverName + "-claim-" + claimUID + ".json" }

// cdiSpec is the spec of one claim: per device, its device nodes only, the
// variable naming its PCI address and its device-info file, mounted read
// only at the same path as on the host
// (the spec's device-plugin directory).
func cdiSpec(claimUID string, devs []prepared, devRoot string) *cdispec.Spec {
	spec := &cdispec.Spec{Version: cdispec.CurrentVersion, Kind: CDIKind}
	for i, p := range devs {
		edits := cdispec.ContainerEdits{Env: []string{PCIDeviceEnv + "=" + p.pciAddress}}
		for _, n := range p.devNodes {
			edits.DeviceNodes = append(edits.DeviceNodes, &cdispec.DeviceNode{Path: n, HostPath: filepath.Join(devRoot, n)})
		}
		if p.devInfo != "" {
			edits.Mounts = append(edits.Mounts, &cdispec.Mount{
				HostPath: p.devInfo, ContainerPath: "/" + filepath.Join(binding.DeviceInfoDPDir, filepath.Base(p.devInfo)),
				Options: []string{"ro", "nosuid", "nodev", "noexec", "bind"},
			})
		}
		spec.Devices = append(spec.Devices, cdispec.Device{Name: cdiDeviceName(claimUID, i), ContainerEdits: edits})
	}
	return spec
}
