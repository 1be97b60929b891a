package ctl

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// PoolNICs says where the node's pre-attached DPDK pool NICs are and how
// to look at them.
type PoolNICs struct {
	// Root is the node's filesystem root: udev's database
	// (<root>/run/udev/data), systemd-networkd's and NetworkManager's
	// state (<root>/run/systemd/netif, <root>/run/NetworkManager), the
	// netplan, cloud-init and ifupdown files under <root>/etc and
	// <root>/var/lib/dhcp tell which tool configured a NIC.
	Root string
	// Netns is the node's network namespace ("" = the caller's own).
	Netns string
	// Devices are the node's pre-attached DPDK ports (its KuryrNode's
	// status.dpdkDevices). Only those no consumer owns (Attaching, Ready)
	// are looked at: an owned one is the pod's or the claim's.
	Devices []v1alpha1.DPDKDevice
	// Err says why Devices are not known (no node named, the API server
	// not reachable): the NICs are then not checked.
	Err error
}

// howToExclude ends every warning about a pool NIC.
const howToExclude = "exclude the pool's NICs from the node OS (docs/deploy.md, \"Pre-attached DPDK NICs and the node OS\"; deploy/examples/node-os/)"

// CheckPoolNICs warns about each idle pool NIC of the node that something
// on the node configured: up, holding an address, or renamed away from the
// name udev gave it. kuryr-daemon takes such a NIC back down, but a tool
// that keeps configuring it races with it; each warning names the tool the
// node's files point at and how to exclude the NICs.
func (r *Report) CheckPoolNICs(p PoolNICs) {
	if p.Err != nil {
		r.add(Warn, "pool NICs", "not checked: %v", p.Err)
		return
	}
	idle := 0
	for _, d := range p.Devices {
		if d.State == v1alpha1.DPDKDeviceAttaching || d.State == v1alpha1.DPDKDeviceReady {
			idle++
		}
	}
	if idle == 0 {
		r.add(OK, "pool NICs", "the node's KuryrNode lists no idle pre-attached DPDK device")
		return
	}
	links, addrs, err := listLinks(p.Netns)
	if err != nil {
		r.add(Warn, "pool NICs", "not checked: %v", err)
		return
	}
	seen := 0
	for _, d := range p.Devices {
		if d.State != v1alpha1.DPDKDeviceAttaching && d.State != v1alpha1.DPDKDeviceReady {
			continue
		}
		for _, l := range links {
			a := l.Attrs()
			if !strings.EqualFold(a.HardwareAddr.String(), d.MAC) {
				continue
			}
			seen++
			what := "pool NIC " + a.Name
			var problems []string
			if a.Flags&net.FlagUp != 0 {
				problems = append(problems, "is up")
			}
			dynamic := false
			for _, ad := range addrs {
				if ad.LinkIndex == a.Index && ad.IPNet != nil && !ad.IP.IsLinkLocalUnicast() {
					problems = append(problems, "holds "+ad.IPNet.String())
					dynamic = dynamic || ad.Flags&unix.IFA_F_PERMANENT == 0
				}
			}
			udevName := udevNetName(p.Root, a.Index)
			if udevName != "" && udevName != a.Name {
				problems = append(problems, fmt.Sprintf("was renamed from %s, the name udev gave it", udevName))
			}
			if len(problems) == 0 {
				r.add(OK, what, "%s (port %s) is down and unconfigured", d.MAC, d.PortID)
				continue
			}
			r.add(Warn, what, "%s (port %s) %s: %s; %s", d.MAC, d.PortID, strings.Join(problems, ", "),
				whoConfigured(p.Root, a.Index, a.Name, dynamic), howToExclude)
		}
	}
	r.add(OK, "pool NICs", "%d idle in the KuryrNode, %d of them on their kernel driver here", idle, seen)
}

func listLinks(path string) ([]netlink.Link, []netlink.Addr, error) {
	var h netlinksafe.Handle
	var err error
	if path == "" {
		h, err = netlinksafe.NewHandle(unix.NETLINK_ROUTE)
	} else {
		var n ns.NetNS
		if n, err = ns.GetNS(path); err != nil {
			return nil, nil, fmt.Errorf("open netns %s: %w", path, err)
		}
		defer func() { _ = n.Close() }()
		h, err = netlinksafe.NewHandleAt(nsHandle(n), unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses: %w", err)
	}
	return links, addrs, nil
}

// udevNetName is the name udev's net_setup_link gave the link with index
// idx (ID_NET_NAME in <root>/run/udev/data/n<idx>), "" when udev recorded
// none.
func udevNetName(root string, idx int) string {
	f, err := os.Open(filepath.Join(root, "run", "udev", "data", "n"+strconv.Itoa(idx)))
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "E:ID_NET_NAME="); ok {
			return v
		}
	}
	return ""
}

// whoConfigured says which tool the node's files point at for the link
// (index idx, name) and the snippet that excludes the NICs from it.
func whoConfigured(root string, idx int, name string, dynamic bool) string {
	var who []string
	if st := keyValues(filepath.Join(root, "run", "systemd", "netif", "links", strconv.Itoa(idx))); st["ADMIN_STATE"] != "" && st["ADMIN_STATE"] != "unmanaged" {
		s := "systemd-networkd manages it (" + st["ADMIN_STATE"]
		if f := st["NETWORK_FILE"]; f != "" {
			s += ", from " + f
			if strings.Contains(f, "netplan") {
				s += ": netplan's"
			}
		}
		who = append(who, s+"): add 05-kuryr-dpdk-pool.network (Unmanaged=yes)")
	}
	if exists(filepath.Join(root, "run", "NetworkManager", "devices", strconv.Itoa(idx))) {
		who = append(who, "NetworkManager manages it: add 99-kuryr-dpdk-pool.conf (unmanaged-devices) or the udev rule's NM_UNMANAGED")
	}
	if exists(filepath.Join(root, "etc", "netplan", "50-cloud-init.yaml")) || exists(filepath.Join(root, "etc", "network", "interfaces.d", "50-cloud-init")) {
		who = append(who, "cloud-init wrote the network configuration: keep its hot-plug updates off (99-kuryr-dpdk-pool.cfg)")
	}
	if leases, _ := filepath.Glob(filepath.Join(root, "var", "lib", "dhcp", "dhclient*"+name+"*.leases")); len(leases) > 0 {
		who = append(who, "dhclient has a lease for it ("+leases[0]+"): ifupdown's allow-hotplug matches it")
	}
	if len(who) == 0 {
		if dynamic {
			return "a DHCP client configured it (the address has a lifetime)"
		}
		return "no network manager of the node claims it (a script, or a tool this check does not know)"
	}
	return strings.Join(who, "; ")
}

// keyValues reads a KEY=VALUE file (systemd's state files); empty when
// absent.
func keyValues(path string) map[string]string {
	kv := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return kv
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func nsHandle(n ns.NetNS) netns.NsHandle { return netns.NsHandle(int(n.Fd())) }
