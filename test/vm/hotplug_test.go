package vm

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/vmenv"
)

const testMAC = "fa:16:3e:00:00:10"

func TestHotplugBindUIOAndTestpmd(t *testing.T) {
	g := requireGuest(t)
	vm := startVM(t, qemu.Options{Kernel: g.Kernel, Initrd: g.Initrd})
	hotplugBindRun(t, vm, "uio_pci_generic")
}

func TestHotplugBindVFIOWithVIOMMU(t *testing.T) {
	g := requireGuest(t)
	vm := startVM(t, qemu.Options{Kernel: g.Kernel, Initrd: g.Initrd, VIOMMU: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if n := strings.TrimSpace(sh(ctx, t, vm, "ls /sys/class/iommu | wc -l")); n == "0" {
		t.Fatal("guest sees no IOMMU although the VM has intel-iommu and intel_iommu=on")
	}
	hotplugBindRun(t, vm, "vfio-pci")
}

// hotplugBindRun is the node side of a DPDK interface attach, done by hand
// with the steps of DESIGN.md "Binding a DPDK device": hot-plug, wait for the
// netdev with the port's MAC, bind driver, run testpmd, rebind virtio-pci,
// unplug.
func hotplugBindRun(t *testing.T, vm *qemu.VM, driver string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	start := time.Now()
	nic, err := vm.AttachNIC(ctx, qemu.NICOptions{ID: "port1", MAC: testMAC, Match: vmenv.IsTxonlyFrame})
	if err != nil {
		t.Fatal(err)
	}
	added := time.Since(start)

	ifname := waitForMAC(ctx, t, vm, testMAC)
	visible := time.Since(start)
	pci := strings.TrimSpace(sh(ctx, t, vm, fmt.Sprintf(
		"basename $(dirname $(readlink -f /sys/class/net/%s/device))", ifname)))
	if !strings.HasPrefix(pci, "0000:") {
		t.Fatalf("pci address of %s: got %q", ifname, pci)
	}
	t.Logf("device %s on %s: netdev %s, pci %s", nic.ID, nic.RootPort, ifname, pci)
	t.Logf("timing: device_add returned %v, netdev visible %v after device_add", added.Round(time.Millisecond), (visible - added).Round(time.Millisecond))

	checkVLANAndMACVLAN(ctx, t, vm, ifname)

	bound := bind(ctx, t, vm, pci, driver)
	t.Logf("timing: bind to %s %v (one agent round trip included)", driver, bound.Round(time.Millisecond))
	if out := sh(ctx, t, vm, "ls /sys/class/net"); strings.Contains(out, ifname+"\n") {
		t.Fatalf("netdev %s still there after binding %s to %s", ifname, pci, driver)
	}

	before := nic.Matched()
	out := sh(ctx, t, vm, fmt.Sprintf(`
echo 128 > /proc/sys/vm/nr_hugepages
grep -q hugetlbfs /proc/mounts || mount -t hugetlbfs hugetlbfs /dev/hugepages
timeout -s INT 10 dpdk-testpmd -l 0-1 -n 1 -a %[1]s --file-prefix=kt -- \
	--forward-mode=txonly --stats-period 2 --nb-cores=1 --total-num-mbufs=8192 >/tmp/testpmd.log 2>&1
rc=$?
cat /tmp/testpmd.log
exit 0`, pci))
	frames := nic.Matched() - before
	t.Logf("testpmd (%s) output tail:\n%s", driver, vmenv.LastLines(out, 25))
	t.Logf("host counted %d txonly frames from %s (%d frames in all)", frames, nic.ID, nic.Frames())
	if frames <= 0 {
		t.Fatalf("testpmd on %s (%s) sent no frame the host could count", pci, driver)
	}

	rebind := time.Now()
	bind(ctx, t, vm, pci, "virtio-pci")
	if got := waitForMAC(ctx, t, vm, testMAC); got == "" {
		t.Fatal("netdev did not come back")
	}
	t.Logf("timing: rebind to virtio-pci until the netdev is back %v", time.Since(rebind).Round(time.Millisecond))

	unplug := time.Now()
	if err := vm.DetachNIC(ctx, nic.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: device_del until DEVICE_DELETED %v", time.Since(unplug).Round(time.Millisecond))
	if res, err := vm.Agent.Run(ctx, "test -e /sys/bus/pci/devices/"+pci); err != nil || res.ExitCode == 0 {
		t.Fatalf("pci device %s still in the guest after DEVICE_DELETED (%v)", pci, err)
	}
}

// waitForMAC polls in the guest for the netdev with mac and returns its name.
func waitForMAC(ctx context.Context, t *testing.T, vm *qemu.VM, mac string) string {
	t.Helper()
	out := sh(ctx, t, vm, fmt.Sprintf(`
i=0
while [ $i -lt 600 ]; do
	for d in /sys/class/net/*; do
		if [ "$(cat $d/address 2>/dev/null)" = %s ]; then echo ${d##*/}; exit 0; fi
	done
	i=$((i+1))
	sleep 0.01
done
echo "no netdev with MAC %s" >&2
exit 1`, mac, mac))
	return strings.TrimSpace(out)
}

// bind moves pci to driver as the daemon will: unbind, driver_override,
// drivers_probe, wait for the driver link, clear the override. It returns
// the time the whole step took, seen from the host.
func bind(ctx context.Context, t *testing.T, vm *qemu.VM, pci, driver string) time.Duration {
	t.Helper()
	mod := strings.ReplaceAll(driver, "-", "_")
	start := time.Now()
	sh(ctx, t, vm, fmt.Sprintf(`
set -e
dev=/sys/bus/pci/devices/%[1]s
[ %[3]s = virtio_pci ] || modprobe %[3]s
# vfio_pci names vfio_iommu_type1 only as a soft dependency, which busybox's
# modprobe ignores: without it DPDK finds "no supported IOMMU extensions".
[ %[3]s != vfio_pci ] || modprobe vfio_iommu_type1
if [ -e $dev/driver ]; then echo %[1]s > $dev/driver/unbind; fi
echo %[2]s > $dev/driver_override
echo %[1]s > /sys/bus/pci/drivers_probe
i=0
until [ "$(basename "$(readlink $dev/driver)")" = %[2]s ]; do
	i=$((i+1)); [ $i -lt 500 ] || { echo "%[1]s not bound to %[2]s" >&2; exit 1; }
	sleep 0.01
done
echo > $dev/driver_override`, pci, driver, mod))
	return time.Since(start)
}

// checkVLANAndMACVLAN proves the guest kernel does what the host's cannot:
// an 802.1Q link on the hot-plugged netdev (and a MACVLAN one).
func checkVLANAndMACVLAN(ctx context.Context, t *testing.T, vm *qemu.VM, ifname string) {
	t.Helper()
	out := sh(ctx, t, vm, fmt.Sprintf(`
set -e
modprobe 8021q
modprobe macvlan
ip link set %[1]s up
/bin/ip link add link %[1]s name %[1]s.100 type vlan id 100
/bin/ip -d link show %[1]s.100
/bin/ip link add link %[1]s name mv0 type macvlan mode bridge
/bin/ip -d link show mv0
/bin/ip link del %[1]s.100
/bin/ip link del mv0
ip link set %[1]s down`, ifname))
	if !strings.Contains(out, "vlan") || !strings.Contains(out, "id 100") {
		t.Fatalf("802.1Q link on %s: %s", ifname, out)
	}
	t.Logf("guest kernel: 802.1Q VLAN link (id 100) and MACVLAN link created on %s", ifname)
}
