package aio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The layers a pod's network leaves something in, in the order Traces
// lists them (and the soak's table prints them).
const (
	LayerPorts        = "ports"              // Neutron ports with the cluster's tag
	LayerSubports     = "subports"           // on the node VMs' trunks
	LayerAddressPairs = "address pairs"      // on the node VMs' ports
	LayerAttachments  = "attachments"        // Nova interface attachments to the node VMs
	LayerDevices      = "devices"            // hot-plugged PCI devices in the node VMs
	LayerBound        = "bound devices"      // of those, bound to a DPDK driver
	LayerCheckpoints  = "checkpoints"        // kuryr-daemon's records
	LayerDevinfo      = "device-info files"  // NPWG device-info
	LayerCDISpecs     = "CDI specs"          // the DRA driver's, one per prepared claim
	LayerCNIResults   = "CNI results"        // the runtimes' cached results (removed by a DEL)
	LayerNetNS        = "network namespaces" // pod sandboxes
	LayerLinks        = "links"              // VLAN and MACVLAN links left in the node VMs
)

// Layers lists every layer, in order.
var Layers = []string{LayerPorts, LayerSubports, LayerAddressPairs, LayerAttachments, LayerDevices, LayerBound,
	LayerCheckpoints, LayerDevinfo, LayerCDISpecs, LayerCNIResults, LayerNetNS, LayerLinks}

// Trace is one thing of kuryr-dpdk's found in a layer.
type Trace struct {
	Layer string
	What  string
}

// Traces lists everything of kuryr-dpdk's the cloud and the nodes hold,
// layer by layer, and the lookups that failed (a count that could not be
// made is reported, never read as nothing there). While pods run these are
// their interfaces; once no pod of kuryr-dpdk exists, each is a leak.
// kuryr-daemon's and kuryr-controller's own pods use the host network:
// they have none of these. A node deleted (DeleteNode) is counted in the
// cloud only: its VM, and everything in it, is gone. With Options.DRA the
// idle ports of the DPDK pools (no pod's, no claim's) and their devices
// are not listed: they are the pools.
func (e *Env) Traces() ([]Trace, []error) {
	var out []Trace
	var errs []error
	add := func(layer, format string, args ...any) {
		out = append(out, Trace{Layer: layer, What: fmt.Sprintf(format, args...)})
	}
	tag := "kuryr-cluster=" + e.ClusterID()
	ports := e.Cloud.Ports()
	pooled := map[string]bool{} // idle pool ports (Options.DRA)
	for _, p := range ports {
		if slices.Contains(p.Tags, tag) && e.opts.DRA && idlePoolPort(p.Tags) {
			pooled[p.ID] = true
			continue
		}
		if slices.Contains(p.Tags, tag) {
			add(LayerPorts, "port %s (%s, %s)", p.ID, p.Name, p.Status)
		}
	}
	for _, n := range e.Nodes {
		if n.Deleted() {
			for _, p := range ports {
				if p.DeviceID == n.Server.Server.ID {
					add(LayerAttachments, "port %s bound to the deleted server %s of %s", p.ID, p.DeviceID, n.Name)
				}
			}
			continue
		}
		if subs, ok := e.Cloud.Subports(n.Server.TrunkID); !ok {
			errs = append(errs, fmt.Errorf("trunk %s of %s not found: its subports cannot be counted", n.Server.TrunkID, n.Name))
		} else {
			for _, s := range subs {
				add(LayerSubports, "subport %s VLAN %d on the trunk of %s", s.PortID, s.SegmentationID, n.Name)
			}
		}
		if p, ok := e.Cloud.Port(n.Server.ParentPort.ID); !ok {
			errs = append(errs, fmt.Errorf("port %s of %s not found: its allowed address pairs cannot be counted", n.Server.ParentPort.ID, n.Name))
		} else {
			for _, a := range p.AllowedAddressPairs {
				add(LayerAddressPairs, "allowed address pair %s %s on the port of %s", a.IPAddress, a.MACAddress, n.Name)
			}
		}
		for _, p := range ports {
			if p.DeviceID == n.Server.Server.ID && p.ID != n.Server.ParentPort.ID && !pooled[p.ID] {
				add(LayerAttachments, "port %s attached to %s", p.ID, n.Name)
			}
		}
		for port, addr := range n.devices() {
			if pooled[port] {
				continue
			}
			add(LayerDevices, "device %s (port %s) in %s", addr, port, n.Name)
			if drv := n.PCI.Driver(addr); drv != "" && drv != "virtio-pci" {
				add(LayerBound, "device %s bound to %s in %s", addr, drv, n.Name)
			}
		}
		if links, err := Links(n.NetNS); err != nil {
			errs = append(errs, err)
		} else {
			for name, l := range links {
				if l.Kind == "vlan" || l.Kind == "macvlan" {
					add(LayerLinks, "%s link %s in %s", l.Kind, name, n.Name)
				}
			}
		}
		if n.real != nil {
			entries, err := os.ReadDir(n.real.nodeFS(netnsDir))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("%s of %s not listed: %w", netnsDir, n.Name, err))
			}
			for _, ent := range entries {
				add(LayerNetNS, "netns %s on %s", ent.Name(), n.Name)
			}
		}
		for _, ld := range n.attachmentDirs() {
			layer, dir := ld.layer, ld.dir
			_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				switch {
				case err != nil && !errors.Is(err, fs.ErrNotExist):
					errs = append(errs, fmt.Errorf("%s not listed: %w", path, err))
				case err == nil && !d.IsDir():
					add(layer, "file %s", path)
				}
				return nil
			})
		}
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("%s not listed: %w", netnsDir, err))
	}
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), e.nsName("pod-")) {
			add(LayerNetNS, "netns %s", ent.Name())
		}
	}
	slices.SortStableFunc(out, func(a, b Trace) int { return slices.Index(Layers, a.Layer) - slices.Index(Layers, b.Layer) })
	return out, errs
}

// Leaks lists what is left in the cloud and on the nodes once no pod of
// kuryr-dpdk exists (Traces), failed lookups included.
func (e *Env) Leaks() []string {
	traces, errs := e.Traces()
	var out []string
	for _, t := range traces {
		out = append(out, t.Layer+": "+t.What)
	}
	for _, err := range errs {
		out = append(out, err.Error())
	}
	return out
}

// attachmentDirs hold, on node n, what an attachment leaves until its DEL:
// the daemon's checkpoints and device-info files, the runtime's cached
// results and Multus' state (Options.Multus: a sandbox's delegates and its
// delegates' cached results).
func (n *Node) attachmentDirs() []layerDir {
	dirs := []layerDir{{LayerCheckpoints, n.checkpointDir()}, {LayerDevinfo, n.DevinfoDir},
		{LayerCNIResults, filepath.Join(n.cniCacheDir(), "results")}, {LayerCNIResults, filepath.Join(n.cniCacheDir(), "multus")}}
	if n.real != nil {
		// The DRA driver's: checkpoints, device-info files and CDI specs
		// of prepared claims.
		dirs = append(dirs, layerDir{LayerCheckpoints, n.real.nodeFS("/var/lib/kuryr-dpdk/dra-checkpoints")},
			layerDir{LayerDevinfo, n.devInfoDPDir()}, layerDir{LayerCDISpecs, n.real.nodeFS("/var/run/cdi")})
	}
	return dirs
}

// devInfoDPDir is the node's NPWG device-plugin device-info directory,
// where the DRA driver writes a file per prepared device.
func (n *Node) devInfoDPDir() string {
	return filepath.Join(n.devinfoRoot, "var/run/k8s.cni.cncf.io/devinfo/dp")
}

// idlePoolPort says whether a port's tags make it a pool's port that no
// pod and no claim holds (kuryr-pool=<node>, no kuryr-pod=, no
// kuryr-claim=; docs/controller.md).
func idlePoolPort(tags []string) bool {
	has := func(prefix string) bool {
		return slices.ContainsFunc(tags, func(t string) bool { return strings.HasPrefix(t, prefix) })
	}
	return has("kuryr-pool=") && !has("kuryr-pod=") && !has("kuryr-claim=")
}

// layerDir is a directory of node files and the layer they belong to.
type layerDir struct{ layer, dir string }

// SandboxLeftovers lists the files on node n, among those an attachment
// leaves until its DEL (attachmentDirs), whose name or content names the
// sandbox containerID: after that sandbox's DEL there are none. A file
// that cannot be read is listed with the error.
func (n *Node) SandboxLeftovers(containerID string) []string {
	var out []string
	for _, ld := range n.attachmentDirs() {
		_ = filepath.WalkDir(ld.dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					out = append(out, fmt.Sprintf("%s not listed: %v", path, err))
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(path)
			switch {
			case err != nil:
				out = append(out, fmt.Sprintf("%s not read: %v", path, err))
			case strings.Contains(d.Name(), containerID) || strings.Contains(string(b), containerID):
				out = append(out, "file "+path)
			}
			return nil
		})
	}
	return out
}

// checkpointDir is where the node's kuryr-daemon keeps its checkpoints:
// the DaemonSet's /var/lib/kuryr-dpdk/checkpoints on a real node.
func (n *Node) checkpointDir() string {
	if n.real != nil {
		return n.real.nodeFS("/var/lib/kuryr-dpdk/checkpoints")
	}
	return filepath.Join(n.Dir, "checkpoints")
}
