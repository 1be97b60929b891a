package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
)

func reserve(t *testing.T, root string, pages int) {
	t.Helper()
	d := filepath.Join(root, "sys", "kernel", "mm", "hugepages", "hugepages-2048kB")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "nr_hugepages"), []byte(strconv.Itoa(pages)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func find(r Report, what string) Finding {
	for _, f := range r.Findings {
		if f.What == what {
			return f
		}
	}
	return Finding{}
}

func TestCheckReadyNode(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	sim, err := pcisim.Start(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if err := sim.AddVirtioNet("0000:01:00.0", "fa:16:3e:00:00:01"); err != nil {
		t.Fatal(err)
	}
	reserve(t, root, 512)
	r := Check(root)
	var out bytes.Buffer
	r.Write(&out)
	if !r.OK() || find(r, "hugepages").Detail != "1024 MiB reserved" || find(r, "uio_pci_generic").Level != OK ||
		find(r, "virtio 0000:01:00.0").Level != OK || find(r, "vfio-pci").Level != Warn {
		t.Fatalf("report for a ready node without IOMMU:\n%s", out.String())
	}
}

func TestCheckFindsWhatIsMissing(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	sim, err := pcisim.Start(context.Background(), root, pcisim.WithDrivers(pcisim.DriverVirtioPCI))
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	r := Check(root)
	var out bytes.Buffer
	r.Write(&out)
	if r.OK() || find(r, "hugepages").Level != Fail || find(r, "DPDK driver").Level != Fail ||
		!strings.Contains(find(r, "uio_pci_generic").Detail, "modprobe uio_pci_generic") {
		t.Fatalf("report for a node without hugepages or DPDK drivers:\n%s", out.String())
	}
}

func TestWriteInterfaces(t *testing.T) {
	t.Parallel()
	pods := []v1alpha1.KuryrPod{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "vnf"},
		Spec:       v1alpha1.KuryrPodSpec{NodeName: "node-1"},
		Status: v1alpha1.KuryrPodStatus{Interfaces: []v1alpha1.InterfaceStatus{
			{IfName: "eth0", Driver: v1alpha1.DriverNestedVLAN, State: v1alpha1.StatePlugged, MAC: "fa:16:3e:00:00:01", IPs: []string{"10.0.0.5/24"}, VLANID: 101},
			{IfName: "net1", Driver: v1alpha1.DriverNestedDPDK, State: v1alpha1.StatePlugged, MAC: "fa:16:3e:00:00:02", PCIAddress: "0000:01:00.0", BoundDriver: "uio_pci_generic"},
		}},
	}}
	var out bytes.Buffer
	if err := WriteInterfaces(&out, pods); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "101") || !strings.Contains(lines[2], "0000:01:00.0") || !strings.Contains(lines[2], "uio_pci_generic") {
		t.Fatalf("table:\n%s", out.String())
	}
}

func TestWritePools(t *testing.T) {
	t.Parallel()
	nodes := []v1alpha1.KuryrNode{
		{ObjectMeta: metav1.ObjectMeta{Name: "node-2"}, Status: v1alpha1.KuryrNodeStatus{Pools: []v1alpha1.NodePool{
			{Driver: v1alpha1.DriverNestedMACVLAN, SubnetID: "s2", Ready: 0, Target: 2, Max: 4, LastError: "quota exceeded"},
		}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: v1alpha1.KuryrNodeStatus{Pools: []v1alpha1.NodePool{
			{Driver: v1alpha1.DriverNestedVLAN, SubnetID: "s1", SecurityGroups: []string{"sg1", "sg2"}, Ready: 3, Warming: 1, InUse: 5, Target: 4, Max: 8},
		}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "node-3"}},
	}
	pools := Pools(nodes)
	var table bytes.Buffer
	if err := WritePools(&table, pools, ""); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "node-1") || !strings.Contains(lines[1], "sg1,sg2") ||
		strings.Join(strings.Fields(lines[1])[4:9], " ") != "3 1 5 4 8" || !strings.Contains(lines[2], "quota exceeded") {
		t.Fatalf("table:\n%s", table.String())
	}
	var js bytes.Buffer
	if err := WritePools(&js, pools, "json"); err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0]["node"] != "node-1" || back[0]["ready"] != float64(3) || back[0]["inUse"] != float64(5) || back[0]["target"] != float64(4) {
		t.Fatalf("json:\n%s", js.String())
	}
	if err := WritePools(&js, pools, "yaml"); err == nil {
		t.Fatal("an unknown output format was accepted")
	}
}

// TestWritePoolsDPDK: a nested-dpdk pool is listed with the others, and
// its devices (state, owner) in a second table and in the JSON; a device
// of another subnet is not the pool's, nor is a pod's own port of the
// pool's subnet and security groups (Unpooled).
func TestWritePoolsDPDK(t *testing.T) {
	t.Parallel()
	nodes := []v1alpha1.KuryrNode{{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: v1alpha1.KuryrNodeStatus{
		Pools: []v1alpha1.NodePool{{Driver: v1alpha1.DriverNestedDPDK, SubnetID: "s1", SecurityGroups: []string{"sg1"}, Ready: 1, InUse: 1, Target: 2, Max: 4}},
		DPDKDevices: []v1alpha1.DPDKDevice{
			{PortID: "p1", MAC: "fa:16:3e:00:00:01", SubnetID: "s1", SecurityGroups: []string{"sg1"}, State: v1alpha1.DPDKDeviceReady},
			{PortID: "p2", MAC: "fa:16:3e:00:00:02", SubnetID: "s1", SecurityGroups: []string{"sg1"}, State: v1alpha1.DPDKDeviceInUse, Owner: "claim/c-1"},
			{PortID: "p3", MAC: "fa:16:3e:00:00:03", SubnetID: "s9", State: v1alpha1.DPDKDeviceReady},
			{PortID: "p4", MAC: "fa:16:3e:00:00:04", SubnetID: "s1", SecurityGroups: []string{"sg1"}, State: v1alpha1.DPDKDeviceInUse,
				Owner: "pod/u-4", Unpooled: true},
		},
	}}}
	pools := Pools(nodes)
	var table bytes.Buffer
	if err := WritePools(&table, pools, ""); err != nil {
		t.Fatal(err)
	}
	out := table.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// pool header, the pool, a blank line, device header, two devices
	if len(lines) != 6 || !strings.Contains(lines[1], "nested-dpdk") || !strings.HasPrefix(lines[3], "NODE") ||
		!strings.Contains(lines[4], "p1") || !strings.Contains(lines[4], "Ready") ||
		!strings.Contains(lines[5], "p2") || !strings.Contains(lines[5], "claim/c-1") || strings.Contains(out, "p3") || strings.Contains(out, "p4") {
		t.Fatalf("table:\n%s", out)
	}
	var js bytes.Buffer
	if err := WritePools(&js, pools, "json"); err != nil {
		t.Fatal(err)
	}
	var back []Pool
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 1 || len(back[0].Devices) != 2 || back[0].Devices[1].Owner != "claim/c-1" {
		t.Fatalf("json:\n%s", js.String())
	}
}
