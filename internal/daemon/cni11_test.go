package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// TestChainedAddKeepsPrevResultAndCheckUsesIt chains kuryr-cni after a real
// plugin (loopback) through libcni: the ADD result passes loopback's
// interface and address through with kuryr's after them (CNI 1.1), and
// CHECK holds the pod to the cached prevResult: an address it lists that
// the pod's namespace lacks fails the CHECK.
func TestChainedAddKeepsPrevResultAndCheckUsesIt(t *testing.T) {
	n := newNode(t)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemon(30 * time.Second)
	n.createPod("chain", v1alpha1.StateActive)
	list, err := libcni.NetworkConfFromBytes([]byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"kuryr","plugins":[
		{"type":"loopback"},
		{"type":"kuryr-cni","daemonSocket":%q,"capabilities":{"io.kubernetes.cri.pod-annotations":true}}]}`, n.socket)))
	must(t, err)

	r, err := n.cni.AddNetworkList(n.ctx, list, n.rt())
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	res, err := current.NewResultFromResult(r)
	must(t, err)
	var names []string
	for _, in := range res.Interfaces {
		names = append(names, in.Name)
	}
	if strings.Join(names, ",") != "lo,eth0,net1" {
		t.Fatalf("result interfaces %v, want loopback's lo kept before eth0, net1", names)
	}
	if len(res.IPs) < 3 || res.IPs[0].Address.String() != "127.0.0.1/8" || *res.IPs[0].Interface != 0 {
		t.Fatalf("result IPs %+v, want loopback's 127.0.0.1/8 on interface 0 first", res.IPs)
	}
	last := res.IPs[len(res.IPs)-2:]
	if last[0].Address.String() != "10.1.0.5/16" || *last[0].Interface != 1 || last[1].Address.String() != "10.3.0.7/24" || *last[1].Interface != 2 {
		t.Fatalf("kuryr's IPs %v %v, want 10.1.0.5/16 on interface 1 and 10.3.0.7/24 on 2", last[0], last[1])
	}

	must(t, n.cni.CheckNetworkList(n.ctx, list, n.rt()))

	// The cached result (CHECK's prevResult) now says eth0 also has
	// 10.1.0.99/16, which the pod does not have.
	cache := filepath.Join(n.dir, "cache", "results", "kuryr-"+sandboxID+"-eth0")
	editCachedResult(t, cache, func(res map[string]any) {
		ips := res["ips"].([]any)
		res["ips"] = append(ips, map[string]any{"interface": 1, "address": "10.1.0.99/16"})
	})
	err = n.cni.CheckNetworkList(n.ctx, list, n.rt())
	if err == nil || !strings.Contains(err.Error(), "10.1.0.99/16") {
		t.Fatalf("CHECK with prevResult listing an address the pod lacks: %v, want an error naming it", err)
	}
	must(t, n.cni.DelNetworkList(n.ctx, list, n.rt()))
}

// editCachedResult rewrites the result libcni cached for an attachment.
func editCachedResult(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	var c map[string]any
	must(t, json.Unmarshal(b, &c))
	res, ok := c["result"].(map[string]any)
	if !ok {
		t.Fatalf("cache %s has no result: %s", path, b)
	}
	edit(res)
	b, err = json.Marshal(c)
	must(t, err)
	must(t, os.WriteFile(path, b, 0o600))
}

// TestNetworkMTU: the network's mtu (KuryrPod spec, from the NAD) is what
// the pod's kernel interface gets and what the result reports, for the
// kernel interface and the DPDK device, when it is not above the Neutron
// network's (1450 here); above it, the ADD is refused with code 7 naming
// both.
func TestNetworkMTU(t *testing.T) {
	n := newNode(t)
	must(t, n.sim.AddVirtioNet(dpdkPCI, dpdkMAC))
	n.startDaemon(30 * time.Second)
	n.specEdit = func(s *v1alpha1.KuryrPodSpec) { s.Interfaces[0].MTU, s.Interfaces[1].MTU = 1400, 1300 }
	n.createPod("mtu", v1alpha1.StateActive)
	r, err := n.cni.AddNetworkList(n.ctx, n.list, n.rt())
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	res, err := current.NewResultFromResult(r)
	must(t, err)
	if res.Interfaces[0].Mtu != 1400 || res.Interfaces[1].Mtu != 1300 {
		t.Fatalf("result MTUs eth0 %d net1 %d, want 1400 and 1300", res.Interfaces[0].Mtu, res.Interfaces[1].Mtu)
	}
	if got := n.linkMTU("eth0"); got != 1400 {
		t.Fatalf("eth0 in the pod has MTU %d, want the network's 1400", got)
	}
	must(t, n.cni.CheckNetworkList(n.ctx, n.list, n.rt()))
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))

	n.specEdit = func(s *v1alpha1.KuryrPodSpec) { s.Interfaces[0].MTU = 9000 }
	n.createPod("jumbo", v1alpha1.StateActive)
	_, err = n.cni.AddNetworkList(n.ctx, n.list, n.rt())
	cniCode(t, "ADD with an mtu above the Neutron network's", err, cniapi.CodeBadConfig)
	if !strings.Contains(err.Error(), "9000") || !strings.Contains(err.Error(), "1450") {
		t.Fatalf("error %q does not name both MTUs", err)
	}
	must(t, n.cni.DelNetworkList(n.ctx, n.list, n.rt()))
}

func (n *node) linkMTU(ifName string) int {
	n.t.Helper()
	mtu := 0
	must(n.t, n.podNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		mtu = l.Attrs().MTU
		return nil
	}))
	return mtu
}
