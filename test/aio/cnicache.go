package aio

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// CNICall is one CNI ADD a node's runtime made and that succeeded, as
// libcni cached it when the call returned (<cache>/results/<network>-
// <container ID>-<ifname>): what the runtime passed to the plugin and the
// result it got back. On a real node the cache is containerd's, in the
// node's /var/lib/cni (libcni inside containerd writes it); on a stand-in
// node it is the stand-in's. The runtime removes it on DEL.
type CNICall struct {
	// File is the cache file, as seen from the host.
	File string
	// ContainerID, NetNS and IfName are the call's CNI_CONTAINERID,
	// CNI_NETNS and CNI_IFNAME; Network is the configuration's name.
	ContainerID, NetNS, IfName, Network string
	// Args is CNI_ARGS.
	Args map[string]string
	// PluginType is the type of the configuration's (first) plugin.
	PluginType string
	// DeviceID is the configuration's deviceID: what Multus puts there for
	// a delegate whose NAD names a resource (k8s.v1.cni.cncf.io/resourceName)
	// that the kubelet's pod-resources API lists for the pod.
	DeviceID string
	// Result is what the plugin printed.
	Result *types100.Result
}

// cniCacheEntry is the part of libcni's cache file (kind cniCacheV1) that
// CNICall reads.
type cniCacheEntry struct {
	Kind        string          `json:"kind"`
	ContainerID string          `json:"containerId"`
	IfName      string          `json:"ifName"`
	NetworkName string          `json:"networkName"`
	NetNS       string          `json:"netns"`
	CNIArgs     [][2]string     `json:"cniArgs"`
	Config      []byte          `json:"config"`
	Result      json.RawMessage `json:"result"`
}

// cniCacheDir is the libcni cache directory of node n's runtime.
func (n *Node) cniCacheDir() string {
	if n.real != nil {
		return n.real.nodeFS("/var/lib/cni")
	}
	return filepath.Join(n.Dir, "cni-cache")
}

// CNICalls lists the cached CNI ADDs of pod on its node (matched by
// K8S_POD_UID in CNI_ARGS): one per network attachment the runtime made.
func (e *Env) CNICalls(pod *corev1.Pod) ([]CNICall, error) {
	n := e.Node(pod.Spec.NodeName)
	if n == nil {
		return nil, fmt.Errorf("pod %s/%s is on %q, not one of the environment's nodes", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	return cniCalls(n.cniCacheDir(), pod.UID)
}

// MultusDelegateCalls lists the ADDs real Multus (Options.Multus) made for
// pod on its node, as libcni inside Multus cached them (MultusCacheDir):
// one per delegate (in the cache files' name order).
func (e *Env) MultusDelegateCalls(pod *corev1.Pod) ([]CNICall, error) {
	n := e.Node(pod.Spec.NodeName)
	if n == nil || n.real == nil || !e.opts.Multus {
		return nil, fmt.Errorf("pod %s/%s is on %q, not a real node of an environment with Multus", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	return cniCalls(n.real.nodeFS(MultusCacheDir), pod.UID)
}

// cniCalls reads the libcni cache under dir for pod uid's calls.
func cniCalls(dir string, uid types.UID) ([]CNICall, error) {
	return cachedCalls(dir, func(c CNICall) bool { return c.Args["K8S_POD_UID"] == string(uid) })
}

// cachedCalls reads the libcni cache under dir for the calls keep takes
// (given their file, container, namespace, interface, network and
// arguments).
func cachedCalls(dir string, keep func(CNICall) bool) ([]CNICall, error) {
	files, err := filepath.Glob(filepath.Join(dir, "results", "*"))
	if err != nil {
		return nil, err
	}
	var out []CNICall
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var c cniCacheEntry
		if err := json.Unmarshal(b, &c); err != nil || c.Kind != "cniCacheV1" {
			return nil, fmt.Errorf("libcni cache file %s: kind %q, %v", f, c.Kind, err)
		}
		call := CNICall{File: f, ContainerID: c.ContainerID, NetNS: c.NetNS, IfName: c.IfName, Network: c.NetworkName,
			Args: map[string]string{}}
		for _, a := range c.CNIArgs {
			call.Args[a[0]] = a[1]
		}
		if !keep(call) {
			continue
		}
		var conf struct {
			Type     string `json:"type"`
			DeviceID string `json:"deviceID"`
			Plugins  []struct {
				Type string `json:"type"`
			} `json:"plugins"`
		}
		if err := json.Unmarshal(c.Config, &conf); err != nil {
			return nil, fmt.Errorf("libcni cache file %s: config: %w", f, err)
		}
		call.PluginType, call.DeviceID = conf.Type, conf.DeviceID
		if len(conf.Plugins) > 0 {
			call.PluginType = conf.Plugins[0].Type
		}
		if call.Result, err = decodeResult(c.Result); err != nil {
			return nil, fmt.Errorf("libcni cache file %s: %w", f, err)
		}
		out = append(out, call)
	}
	return out, nil
}

// decodeResult reads a cached CNI result (any 1.x version).
func decodeResult(raw json.RawMessage) (*types100.Result, error) {
	var v struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	if !strings.HasPrefix(v.CNIVersion, "1.") {
		return nil, fmt.Errorf("result of CNI version %q, want 1.x", v.CNIVersion)
	}
	var r types100.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	return &r, nil
}

// ContainerdADD is the CNI ADD of pod's eth0 that containerd of a real node
// made, checked to be containerd's and kuryr-cni's (Multus' with
// Options.Multus): containerd ran the plugin kuryr-cni (multus) with the sandbox's ID as CNI_CONTAINERID (also
// K8S_POD_INFRA_CONTAINER_ID), a network namespace it made under the node's
// /var/run/netns as cni-<uuid> (the stand-in names its namespaces
// kuryr-aio-…), the pod's namespace, name and UID in CNI_ARGS, and got a
// result back (libcni caches only successful ADDs).
func (e *Env) ContainerdADD(pod *corev1.Pod) (CNICall, error) {
	if n := e.Node(pod.Spec.NodeName); n == nil || n.real == nil {
		return CNICall{}, fmt.Errorf("pod %s/%s is on %q, not a real node of the environment", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	calls, err := e.CNICalls(pod)
	if err != nil {
		return CNICall{}, err
	}
	for _, c := range calls {
		if c.IfName != "eth0" {
			continue
		}
		var errs []string
		if want := e.nodeCNI(); c.PluginType != want {
			errs = append(errs, fmt.Sprintf("plugin type %q, want %s", c.PluginType, want))
		}
		if !strings.HasPrefix(c.NetNS, "/var/run/netns/cni-") && !strings.HasPrefix(c.NetNS, "/run/netns/cni-") {
			errs = append(errs, fmt.Sprintf("CNI_NETNS %q, not one containerd made (/var/run/netns/cni-…)", c.NetNS))
		}
		if c.ContainerID == "" || c.Args["K8S_POD_INFRA_CONTAINER_ID"] != c.ContainerID {
			errs = append(errs, fmt.Sprintf("CNI_CONTAINERID %q, K8S_POD_INFRA_CONTAINER_ID %q: want the sandbox's ID in both", c.ContainerID, c.Args["K8S_POD_INFRA_CONTAINER_ID"]))
		}
		if c.Args["K8S_POD_NAMESPACE"] != pod.Namespace || c.Args["K8S_POD_NAME"] != pod.Name {
			errs = append(errs, fmt.Sprintf("CNI_ARGS %v, want the pod's namespace and name", c.Args))
		}
		if c.Result == nil || len(c.Result.Interfaces) == 0 {
			errs = append(errs, "no interfaces in the result")
		}
		if len(errs) > 0 {
			return c, fmt.Errorf("the ADD of pod %s/%s cached in %s: %s", pod.Namespace, pod.Name, c.File, strings.Join(errs, "; "))
		}
		return c, nil
	}
	return CNICall{}, fmt.Errorf("no cached CNI ADD of eth0 for pod %s/%s (UID %s) among %d on %s", pod.Namespace, pod.Name, pod.UID, len(calls), pod.Spec.NodeName)
}

// nodeCNI is the plugin type of the real nodes' CNI configuration.
func (e *Env) nodeCNI() string {
	if e.opts.Multus {
		return "multus"
	}
	return "kuryr-cni"
}

// String says what the call was, for a test's log.
func (c CNICall) String() string {
	var ifs []string
	for _, i := range c.Result.Interfaces {
		if i.PciID != "" {
			ifs = append(ifs, i.Name+" (pci "+i.PciID+")")
		} else {
			ifs = append(ifs, i.Name)
		}
	}
	return fmt.Sprintf("%s ADD CNI_CONTAINERID=%.12s… CNI_NETNS=%s CNI_IFNAME=%s → %s",
		c.PluginType, c.ContainerID, c.NetNS, c.IfName, strings.Join(ifs, ", "))
}
