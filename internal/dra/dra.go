// Package dra is kuryr-daemon's DRA driver (Dynamic Resource Allocation,
// resource.k8s.io/v1) for the node's pre-attached DPDK ports: a kubelet
// plugin that publishes the node's ports as one ResourceSlice pool and, when
// the kubelet prepares a ResourceClaim, binds the claimed port's PCI device
// to a DPDK driver and hands the runtime a CDI device with only that
// device's nodes.
//
// What it reads: its own node's KuryrNode (status.dpdkDevices, written by
// the controller, the one owner of the ports) and the node's PCI sysfs. What
// it writes: the node's ResourceSlices, one CDI spec and one NPWG
// device-info file per prepared claim, checkpoints (before any device
// changes) and the claim's device status. The wire contract is
// docs/dra.md.
package dra

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// Names the driver is known by.
const (
	// DriverName is the DRA driver's name: the ResourceSlices' and the
	// allocation results' driver, the opaque configuration's driver, the
	// attributes' domain, and the CDI vendor.
	DriverName = v1alpha1.DRADriverName
	// CDIKind is the kind ("vendor/class") of the CDI devices the driver
	// writes.
	CDIKind = DriverName + "/port"
	// ExtendedResourceName is the extended resource the DeviceClass in
	// deploy/ maps to this driver's devices (KEP-5004).
	ExtendedResourceName = DriverName + "/port"
	// PCIDeviceEnv is the variable that names the device's PCI address in
	// the container, after the SR-IOV device plugin's convention
	// (PCIDEVICE_<resource name, "." and "/" as "_", upper case>).
	PCIDeviceEnv = "PCIDEVICE_DPDK_KURYR_DPDK_IO_PORT"
	// DeviceNamePrefix prefixes the port ID in a device's name.
	DeviceNamePrefix = v1alpha1.DRADeviceNamePrefix
	// OwnerPrefix prefixes a claim's UID in a KuryrNode device's owner.
	OwnerPrefix = v1alpha1.DPDKOwnerClaim
)

// Options configure the DRA driver (kuryr-daemon's --dra-* flags).
type Options struct {
	// Enabled is "auto" (on when RegistrarDir exists: the node runs a
	// kubelet), "true" or "false".
	Enabled string
	// NodeName is the node whose KuryrNode and pool this is (the daemon's
	// --node-name).
	NodeName string
	// SysfsRoot is the root of the sysfs tree (<root>/sys), the daemon's
	// --sysfs-root.
	SysfsRoot string
	// DevRoot is where the host's /dev is (<root>/dev): the CDI spec's host
	// paths of device nodes, and where vfio's no-IOMMU nodes are looked for.
	DevRoot string
	// CheckpointDir holds one record per prepared device. It is not the
	// CNI path's directory: the daemon's start-up reconcile and CNI GC
	// undo what they find in theirs.
	CheckpointDir string
	// CDIDir is where the per-claim CDI specs go (/var/run/cdi).
	CDIDir string
	// DevInfoRoot is the root of the NPWG device-info directory; the
	// driver's files go to its device-plugin directory.
	DevInfoRoot string
	// PluginDir is the kubelet plugin's directory (its DRA socket).
	PluginDir string
	// RegistrarDir is the kubelet's plugin registry directory.
	RegistrarDir string
	// NodeCache, when set, is a started-by-its-owner cache that already
	// watches this node's KuryrNode (kuryr-daemon's manager: its
	// CacheOptions restrict KuryrNodes to the node's name): the driver
	// reads the KuryrNode from it instead of opening a watch of its own.
	// Nil: the driver makes and starts its own cache.
	NodeCache cache.Informers
	// NodeReader, when set, reads from the API server itself, not a cache
	// (kuryr-daemon's manager's API reader, the one its CNI ADD confirms a
	// refused device with): a Prepare the cached KuryrNode refuses reads
	// the KuryrNode through it once to confirm that. Nil: the driver makes
	// an uncached client of its own.
	NodeReader client.Reader
	// OwnerTimeout bounds how long a Prepare waits for the controller to
	// record the claim as the device's owner before failing (the kubelet
	// retries). A device the KuryrNode shows missing or another
	// consumer's, as the API server confirms, fails at once instead.
	OwnerTimeout time.Duration
	// DeviceTimeout bounds each wait for a device (bind, rebind, netdev).
	DeviceTimeout time.Duration
	// Resync republishes the node's devices this often even when no event
	// said anything changed.
	Resync time.Duration
	// Metrics is where the driver's metrics are registered (kuryr-daemon:
	// controller-runtime's registry, served on its --metrics-bind-address).
	// Nil: they are kept but not registered.
	Metrics prometheus.Registerer
}

// Defaults are the options of a real node.
func Defaults() Options {
	return Options{
		Enabled:       "auto",
		SysfsRoot:     "/",
		DevRoot:       "/",
		CheckpointDir: "/var/lib/kuryr-dpdk/dra-checkpoints",
		CDIDir:        "/var/run/cdi",
		DevInfoRoot:   "/",
		PluginDir:     "/var/lib/kubelet/plugins/" + DriverName,
		RegistrarDir:  "/var/lib/kubelet/plugins_registry",
		OwnerTimeout:  20 * time.Second,
		DeviceTimeout: 30 * time.Second,
		Resync:        5 * time.Minute,
	}
}

// AddFlags registers the options that are the driver's own on fs; NodeName,
// SysfsRoot, DevInfoRoot and DeviceTimeout come from the daemon's flags.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Enabled, "dra", o.Enabled, "run the DRA kubelet plugin for DPDK ports: auto (when --dra-registrar-dir exists), true or false")
	fs.StringVar(&o.CheckpointDir, "dra-checkpoint-dir", o.CheckpointDir, "directory of the DRA driver's per-device checkpoints (not --checkpoint-dir)")
	fs.StringVar(&o.CDIDir, "dra-cdi-dir", o.CDIDir, "directory the per-claim CDI specs are written to (the runtime's CDI spec directory)")
	fs.StringVar(&o.DevRoot, "dra-dev-root", o.DevRoot, "root of the host's /dev (<root>/dev), for the CDI specs' host paths")
	fs.StringVar(&o.PluginDir, "dra-plugin-dir", o.PluginDir, "the kubelet plugin's directory (its DRA socket)")
	fs.StringVar(&o.RegistrarDir, "dra-registrar-dir", o.RegistrarDir, "the kubelet's plugin registry directory")
	fs.DurationVar(&o.OwnerTimeout, "dra-owner-timeout", o.OwnerTimeout, "how long a Prepare waits for the controller to give the device to the claim")
	fs.DurationVar(&o.Resync, "dra-resync", o.Resync, "republish the node's DPDK devices at least this often")
}

// On says whether the driver runs: "true", or "auto" with the kubelet's
// plugin registry directory present.
func (o *Options) On() bool {
	switch o.Enabled {
	case "true":
		return true
	case "auto":
		fi, err := os.Stat(o.RegistrarDir)
		return err == nil && fi.IsDir()
	}
	return false
}

// Validate returns every problem at once, each naming its flag.
func (o *Options) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	switch o.Enabled {
	case "auto", "true", "false":
	default:
		bad("dra", "%q must be auto, true or false", o.Enabled)
	}
	for _, f := range []struct{ name, dir string }{
		{"dra-checkpoint-dir", o.CheckpointDir}, {"dra-cdi-dir", o.CDIDir}, {"dra-dev-root", o.DevRoot},
		{"dra-plugin-dir", o.PluginDir}, {"dra-registrar-dir", o.RegistrarDir},
	} {
		if !filepath.IsAbs(f.dir) {
			bad(f.name, "%q must be an absolute path", f.dir)
		}
	}
	if o.OwnerTimeout < 100*time.Millisecond {
		bad("dra-owner-timeout", "%s must be at least 100ms", o.OwnerTimeout)
	}
	if o.Resync < time.Second {
		bad("dra-resync", "%s must be at least 1s", o.Resync)
	}
	return errors.Join(errs...)
}
