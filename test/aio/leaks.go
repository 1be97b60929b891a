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

// Leaks lists what is left in the cloud and on the nodes once no pod of
// kuryr-dpdk exists: ports with the cluster's tag, trunk subports, allowed
// address pairs on the VMs' ports, attached devices, VLAN and MACVLAN links
// in the node VMs' namespaces (kuryr's, under temporary names, when a move
// into a pod failed), pod namespaces (the stand-ins'; on a real node
// containerd's in its /run/netns), checkpoints, device-info files and the
// runtimes' (and Multus') cached CNI results (removed by a DEL), and the DRA
// driver's CDI specs. kuryr-daemon's and kuryr-controller's own pods use the
// host network: they have none of these. With Options.DRA the idle ports of
// the DPDK pools (no pod's, no claim's) and their devices are not leaks:
// they are the pools.
func (e *Env) Leaks() []string {
	var out []string
	tag := "kuryr-cluster=" + e.ClusterID()
	pooled := map[string]bool{} // idle pool ports (Options.DRA)
	for _, p := range e.Cloud.Ports() {
		if !slices.Contains(p.Tags, tag) {
			continue
		}
		if e.opts.DRA && idlePoolPort(p.Tags) {
			pooled[p.ID] = true
			continue
		}
		out = append(out, fmt.Sprintf("port %s (%s, %s)", p.ID, p.Name, p.Status))
	}
	for _, n := range e.Nodes {
		// A lookup that fails is a leak check that failed, reported as such.
		if subs, ok := e.Cloud.Subports(n.Server.TrunkID); !ok {
			out = append(out, fmt.Sprintf("trunk %s of %s not found: its subports cannot be counted", n.Server.TrunkID, n.Name))
		} else if len(subs) > 0 {
			out = append(out, fmt.Sprintf("%d subports on the trunk of %s", len(subs), n.Name))
		}
		if p, ok := e.Cloud.Port(n.Server.ParentPort.ID); !ok {
			out = append(out, fmt.Sprintf("port %s of %s not found: its allowed address pairs cannot be counted", n.Server.ParentPort.ID, n.Name))
		} else if len(p.AllowedAddressPairs) > 0 {
			out = append(out, fmt.Sprintf("%d allowed address pairs on the port of %s", len(p.AllowedAddressPairs), n.Name))
		}
		if d := n.attachedExcept(pooled); d > 0 {
			out = append(out, fmt.Sprintf("%d devices attached to %s", d, n.Name))
		}
		if links, err := Links(n.NetNS); err != nil {
			out = append(out, err.Error())
		} else {
			for name, l := range links {
				if l.Kind == "vlan" || l.Kind == "macvlan" {
					out = append(out, fmt.Sprintf("%s link %s on %s", l.Kind, name, n.Name))
				}
			}
		}
		if n.real != nil {
			entries, _ := os.ReadDir(n.real.nodeFS(netnsDir))
			for _, ent := range entries {
				out = append(out, fmt.Sprintf("netns %s on %s", ent.Name(), n.Name))
			}
		}
		for _, dir := range n.attachmentDirs() {
			_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				switch {
				case err != nil && !errors.Is(err, fs.ErrNotExist):
					out = append(out, fmt.Sprintf("%s not listed: %v", path, err))
				case err == nil && !d.IsDir():
					out = append(out, "file "+path)
				}
				return nil
			})
		}
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		out = append(out, fmt.Sprintf("%s not listed: %v", netnsDir, err))
	}
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), e.nsName("pod-")) {
			out = append(out, "netns "+ent.Name())
		}
	}
	return out
}

// attachmentDirs hold, on node n, what an attachment leaves until its DEL:
// the daemon's checkpoints and device-info files, the runtime's cached
// results and Multus' state (Options.Multus: a sandbox's delegates and its
// delegates' cached results).
func (n *Node) attachmentDirs() []string {
	dirs := []string{n.checkpointDir(), n.DevinfoDir, filepath.Join(n.cniCacheDir(), "results"), filepath.Join(n.cniCacheDir(), "multus")}
	if n.real != nil {
		// The DRA driver's: checkpoints, device-info files and CDI specs
		// of prepared claims.
		dirs = append(dirs, n.real.nodeFS("/var/lib/kuryr-dpdk/dra-checkpoints"), n.devInfoDPDir(), n.real.nodeFS("/var/run/cdi"))
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

// SandboxLeftovers lists the files on node n, among those an attachment
// leaves until its DEL (attachmentDirs), whose name or content names the
// sandbox containerID: after that sandbox's DEL there are none. A file
// that cannot be read is listed with the error.
func (n *Node) SandboxLeftovers(containerID string) []string {
	var out []string
	for _, dir := range n.attachmentDirs() {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
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
