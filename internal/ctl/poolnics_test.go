package ctl

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheckPoolNICs looks at pool NICs in a real network namespace with a
// node's state files under a temporary root: pool0, which udev named ens5,
// was renamed, set up and given an address by systemd-networkd from
// netplan's file, and the warning says so, names the tool and how to
// exclude the NICs; pool1, down and unconfigured, is OK; inuse0 (owned by
// a pod, up) and other0 (in no list) are not looked at.
func TestCheckPoolNICs(t *testing.T) {
	node := netnstest.NewNS(t)
	mac := map[string]string{}
	idx := map[string]int{}
	for _, name := range []string{"pool0", "pool1", "inuse0", "other0"} {
		idx[name] = netnstest.AddParent(t, node, name, 1500)
	}
	if err := node.Do(func(ns.NetNS) error {
		for name := range idx {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			mac[name] = l.Attrs().HardwareAddr.String()
		}
		l, _ := netlink.LinkByName("pool0")
		a, _ := netlink.ParseAddr("192.168.50.7/24")
		if err := netlink.AddrAdd(l, a); err != nil {
			return err
		}
		l, _ = netlink.LinkByName("pool1")
		return netlink.LinkSetDown(l)
	}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "run", "udev", "data", "n"+strconv.Itoa(idx["pool0"])), "I:123\nE:ID_NET_NAME_PATH=enp0s5\nE:ID_NET_NAME=ens5\n")
	writeFile(t, filepath.Join(root, "run", "udev", "data", "n"+strconv.Itoa(idx["pool1"])), "E:ID_NET_NAME=pool1\n")
	writeFile(t, filepath.Join(root, "run", "systemd", "netif", "links", strconv.Itoa(idx["pool0"])),
		"ADMIN_STATE=configured\nOPER_STATE=routable\nNETWORK_FILE=/run/systemd/network/10-netplan-all-en.network\n")

	var r Report
	r.CheckPoolNICs(PoolNICs{Root: root, Netns: node.Path(), Devices: []v1alpha1.DPDKDevice{
		{PortID: "p0", MAC: strings.ToUpper(mac["pool0"]), State: v1alpha1.DPDKDeviceReady},
		{PortID: "p1", MAC: mac["pool1"], State: v1alpha1.DPDKDeviceAttaching},
		{PortID: "p2", MAC: mac["inuse0"], State: v1alpha1.DPDKDeviceInUse, Owner: "pod/uid"},
	}})
	var out bytes.Buffer
	r.Write(&out)
	w := find(r, "pool NIC pool0")
	for _, want := range []string{"is up", "holds 192.168.50.7/24", "was renamed from ens5", "systemd-networkd manages it",
		"10-netplan-all-en.network: netplan's", "Unmanaged=yes", "deploy/examples/node-os/"} {
		if w.Level != Warn || !strings.Contains(w.Detail, want) {
			t.Errorf("pool0's finding does not say %q:\n%s", want, out.String())
		}
	}
	if f := find(r, "pool NIC pool1"); f.Level != OK || !strings.Contains(f.Detail, "down and unconfigured") {
		t.Errorf("pool1's finding:\n%s", out.String())
	}
	if find(r, "pool NIC inuse0").Level != "" || find(r, "pool NIC other0").Level != "" {
		t.Errorf("a NIC no idle pool device names was looked at:\n%s", out.String())
	}
	if f := find(r, "pool NICs"); !strings.Contains(f.Detail, "2 idle in the KuryrNode, 2 of them") {
		t.Errorf("summary:\n%s", out.String())
	}
	if !r.OK() {
		t.Errorf("warnings about pool NICs fail the check:\n%s", out.String())
	}
}
