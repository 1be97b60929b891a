package aio

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
)

// fakeCNIName is the name the test binary is linked under to act as a
// trivial CNI plugin: ADD makes eth0 (a veth end) with an address in the
// pod's namespace, DEL removes nothing; both are recorded in recordDir.
const fakeCNIName = "fake-cni"

type fakeConf struct {
	types.PluginConf
	RecordDir string   `json:"recordDir"`
	FailPods  []string `json:"failPods"`
	// FailDelOncePods: the first DEL of each sandbox of these pods fails
	// (a file <containerID>fakeDelFailedSuffix records it), later ones
	// succeed.
	FailDelOncePods []string `json:"failDelOncePods"`
}

// fakeDelFailedSuffix names the record of a DEL the fake plugin failed.
const fakeDelFailedSuffix = "-DEL-failed"

// fakeCall is what the fake plugin records of one call.
type fakeCall struct {
	Command     string          `json:"command"`
	ContainerID string          `json:"containerID"`
	NetNS       string          `json:"netns"`
	IfName      string          `json:"ifName"`
	Args        string          `json:"args"`
	Stdin       json.RawMessage `json:"stdin"`
}

func fakeCNIMain() int {
	stdin, _ := io.ReadAll(os.Stdin)
	cmd := os.Getenv("CNI_COMMAND")
	if cmd == "VERSION" {
		fmt.Print(`{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}`)
		return 0
	}
	var conf fakeConf
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return fail(7, "bad config: "+err.Error())
	}
	call := fakeCall{Command: cmd, ContainerID: os.Getenv("CNI_CONTAINERID"), NetNS: os.Getenv("CNI_NETNS"),
		IfName: os.Getenv("CNI_IFNAME"), Args: os.Getenv("CNI_ARGS"), Stdin: stdin}
	b, _ := json.Marshal(call)
	_ = os.WriteFile(filepath.Join(conf.RecordDir, call.ContainerID+"-"+cmd+".json"), b, 0o644)
	podName := ""
	for _, kv := range strings.Split(call.Args, ";") {
		if v, ok := strings.CutPrefix(kv, "K8S_POD_NAME="); ok {
			podName = v
		}
	}
	switch cmd {
	case "ADD":
		if slices.Contains(conf.FailPods, podName) {
			return fail(11, "fake plugin refuses pod "+podName)
		}
		h := fnv.New32a()
		h.Write([]byte(call.ContainerID))
		ip := net.IPv4(10, 99, byte(h.Sum32()>>8), byte(h.Sum32()|1))
		if err := inNS(call.NetNS, func() error {
			la := netlink.NewLinkAttrs()
			la.Name = call.IfName
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "peer0"}); err != nil {
				return err
			}
			l, err := netlink.LinkByName(call.IfName)
			if err != nil {
				return err
			}
			return netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(16, 32)}})
		}); err != nil {
			return fail(999, err.Error())
		}
		res := &types100.Result{CNIVersion: "1.1.0",
			Interfaces: []*types100.Interface{{Name: call.IfName, Sandbox: call.NetNS}},
			IPs:        []*types100.IPConfig{{Interface: types100.Int(0), Address: net.IPNet{IP: ip, Mask: net.CIDRMask(16, 32)}}}}
		if err := res.Print(); err != nil {
			return 1
		}
	case "DEL":
		if slices.Contains(conf.FailDelOncePods, podName) {
			marker := filepath.Join(conf.RecordDir, call.ContainerID+fakeDelFailedSuffix)
			if _, err := os.Stat(marker); os.IsNotExist(err) {
				_ = os.WriteFile(marker, nil, 0o644)
				return fail(11, "fake plugin fails the first DEL of pod "+podName)
			}
		}
	case "CHECK", "GC", "STATUS":
	default:
		return fail(4, "unknown CNI_COMMAND "+cmd)
	}
	return 0
}

func fail(code uint, msg string) int {
	_ = (&types.Error{Code: code, Msg: msg}).Print()
	return 1
}
