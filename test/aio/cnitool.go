package aio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	corev1 "k8s.io/api/core/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// CNITool drives a real node's kuryr-cni the way cnitool (or a runtime)
// does, from the host: libcni runs the kuryr-cni binary the DaemonSet
// installed in the node's /opt/cni/bin with the network configuration it
// installed in the node's /etc/cni/net.d (what the node's containerd reads),
// and the node's kuryr-daemon serves the calls. The network namespace of
// its calls is one it made where containerd makes its own (the node's
// /run/netns), so the daemon's pod sees it as it sees containerd's.
type CNITool struct {
	// CNI is the libcni client; its result cache is the tool's own, not
	// containerd's.
	CNI *libcni.CNIConfig
	// List is the node's network configuration list.
	List *libcni.NetworkConfigList
	// NetNS is the path of the tool's network namespace as containerd
	// names its own (/var/run/netns/…: the daemon's pod mounts the node's
	// /var/run/netns there, and has no /run/netns of the node).
	NetNS string

	node   *Node
	netns  string // its name under the node's /run/netns
	binDir string
}

// NewCNITool makes a CNITool on real node n, with a network namespace named
// netns and its files under dir. Close removes the namespace.
func (e *Env) NewCNITool(n *Node, netns, dir string) (*CNITool, error) {
	if n.real == nil {
		return nil, fmt.Errorf("node %s is not a real node: its kuryr-cni is the kubelet stand-in's", n.Name)
	}
	list, err := libcni.ConfListFromFile(n.real.nodeFS("/etc/cni/net.d/10-kuryr.conflist"))
	if err != nil {
		return nil, fmt.Errorf("the network configuration of %s: %w", n.Name, err)
	}
	// The node's kuryr-cni, beside a node-local file naming the daemon's
	// socket as the host reaches it (the installed one names the node's
	// path of it).
	binDir := filepath.Join(dir, "bin")
	if err := testenv.NodeCNIBin(n.real.nodeFS("/opt/cni/bin"), binDir, n.Socket, "kuryr-cni"); err != nil {
		return nil, fmt.Errorf("kuryr-cni of %s: %w", n.Name, err)
	}
	if out, err := inMountNS(n.real.mountNS, "ip", "netns", "add", netns).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("make network namespace %s on %s: %w: %s", netns, n.Name, err, out)
	}
	return &CNITool{
		CNI:   libcni.NewCNIConfigWithCacheDir([]string{binDir}, filepath.Join(dir, "cache"), nil),
		List:  list,
		NetNS: filepath.Join("/var/run/netns", netns),
		node:  n, netns: netns, binDir: binDir,
	}, nil
}

// WithCache is a client of the same kuryr-cni with another result cache,
// as a runtime that lost its own (restarted with an empty state directory)
// would be: a GC through the tool's client then knows nothing of its calls.
func (c *CNITool) WithCache(dir string) *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{c.binDir}, dir, nil)
}

// RuntimeConf is what containerd passes for pod's sandbox containerID:
// the tool's namespace, eth0, CNI_ARGS in containerd's order and every pod
// annotation through the capability containerd declares.
func (c *CNITool) RuntimeConf(pod *corev1.Pod, containerID string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       c.NetNS,
		IfName:      "eth0",
		Args: [][2]string{
			{"K8S_POD_NAMESPACE", pod.Namespace}, {"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", containerID}, {"K8S_POD_UID", string(pod.UID)}, {"IgnoreUnknown", "1"},
		},
		CapabilityArgs: map[string]any{podAnnotationsCap: pod.Annotations},
	}
}

// RuntimeAttachments are the attachments of network that the node's
// containerd holds (its libcni result cache): the valid attachments of a
// CNI GC that must leave the node's pods alone.
func (c *CNITool) RuntimeAttachments(network string) ([]cnitypes.GCAttachment, error) {
	calls, err := cachedCalls(c.node.cniCacheDir(), func(CNICall) bool { return true })
	if err != nil {
		return nil, err
	}
	var out []cnitypes.GCAttachment
	for _, call := range calls {
		if call.Network == network {
			out = append(out, cnitypes.GCAttachment{ContainerID: call.ContainerID, IfName: call.IfName})
		}
	}
	return out, nil
}

// Close removes the tool's network namespace; once it is gone, Close does
// nothing.
func (c *CNITool) Close() error {
	if _, err := os.Stat(c.node.real.nodeFS(filepath.Join(netnsDir, c.netns))); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := inMountNS(c.node.real.mountNS, "ip", "netns", "delete", c.netns).CombinedOutput(); err != nil {
		return fmt.Errorf("remove network namespace %s on %s: %w: %s", c.netns, c.node.Name, err, out)
	}
	return nil
}
