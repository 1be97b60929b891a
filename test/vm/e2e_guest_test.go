package vm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/vmenv"
)

// watchResult is what addAndWatch saw in the guest; times are guest
// uptimes in seconds (10 ms resolution).
type watchResult struct {
	pci, mac        string
	firstLook       bool
	visible, netdev float64
	bound, added    float64
	addRC           int
	addOut          string
	err             error
}

// addAndWatch runs, in one guest script, the runtime's CNI ADD in the
// background and a watcher that notes when a netdev not in before (the
// output of "echo /sys/class/net/*") appears and when its PCI device is
// bound to the target driver.
func (e *e2e) addAndWatch(containerID, before string) watchResult {
	script := fmt.Sprintf(`
up() { cut -d' ' -f1 /proc/uptime; }
before=" %[1]s "
{ (
%[2]s
) >/tmp/add.out 2>/tmp/add.err; echo "$? $(up)" >/tmp/add.rc; } &
addpid=$!
i=0
pci=
while :; do
	for d in /sys/bus/pci/devices/*; do
		case "$before" in *" $d "*) ;; *) pci=${d##*/} ;; esac
	done
	[ -n "$pci" ] && break
	i=$((i+1)); [ $i -lt 6000 ] || { echo "no new PCI device in 60 s" >&2; exit 1; }
	sleep 0.01
done
echo "visible $(up) $i $pci"
# The virtio-net netdev follows; the daemon may take it away at once.
dev=/sys/bus/pci/devices/$pci
i=0
until [ -n "$(ls $dev/virtio*/net 2>/dev/null)" ] || [ "$(basename "$(readlink $dev/driver)")" = %[3]s ]; do
	i=$((i+1)); [ $i -lt 6000 ] || { echo "no netdev on $pci in 60 s" >&2; exit 1; }
	sleep 0.01
done
echo "netdev $(up) $(cat $dev/virtio*/net/*/address 2>/dev/null)"
i=0
until [ "$(basename "$(readlink $dev/driver)")" = %[3]s ]; do
	i=$((i+1)); [ $i -lt 6000 ] || { echo "device $pci never bound" >&2; exit 1; }
	sleep 0.01
done
echo "bound $(up)"
wait $addpid
read rc t </tmp/add.rc
echo "added $t $rc"
echo "@@out"
cat /tmp/add.out /tmp/add.err`, strings.TrimSpace(before), e.cniScript("ADD", containerID, nil), e.driver)
	res, err := e.vm.Agent.Run(e.ctx, script)
	if err != nil {
		return watchResult{err: fmt.Errorf("guest ADD and watcher: %w", err)}
	}
	if res.ExitCode != 0 {
		return watchResult{err: fmt.Errorf("guest ADD and watcher: exit code %d\nstdout: %s\nstderr: %s", res.ExitCode, res.Stdout, res.Stderr)}
	}
	var w watchResult
	head, out, _ := strings.Cut(res.Stdout, "@@out\n")
	w.addOut = out
	num := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
	for _, line := range strings.Split(head, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "visible":
			w.visible, w.firstLook, w.pci = num(f[1]), f[2] == "0", f[3]
		case len(f) >= 2 && f[0] == "netdev":
			w.netdev = num(f[1])
			if len(f) == 3 {
				w.mac = f[2]
			}
		case len(f) == 2 && f[0] == "bound":
			w.bound = num(f[1])
		case len(f) == 3 && f[0] == "added":
			w.added = num(f[1])
			w.addRC, _ = strconv.Atoi(f[2])
		}
	}
	if w.pci == "" || w.added == 0 {
		w.err = fmt.Errorf("guest ADD and watcher: unexpected output %q", res.Stdout)
	}
	return w
}

// addKilledMidway runs the runtime's first ADD (container containerID) in
// the background in the guest and SIGKILLs kuryr-daemon while it holds
// that ADD (vmenv.KillDaemonMidAdd). Nova's attach is held (the hook's
// Gate), so the daemon is waiting for the pod's interfaces: no device has
// reached the guest (before is the guest's PCI devices before the pod) and
// net1 is not plugged. The ADD must fail with code 11, the daemon having
// died without an answer (cniapi.Client.Do); the test fails if it
// succeeded. The daemon is then started again (its DaemonSet's part) and
// ready.
func (e *e2e) addKilledMidway(containerID, before string) {
	e.t.Helper()
	e.sh(fmt.Sprintf(`rm -f /tmp/add1.rc
{ (
%s
) </dev/null >/tmp/add1.out 2>/tmp/add1.err; echo $? >/tmp/add1.rc; } </dev/null >/dev/null 2>&1 &`, e.cniScript("ADD", containerID, nil)))
	landed := vmenv.KillDaemonMidAdd(e.ctx, e.t, e.vm, e.pod.Name)
	st := e.waitKuryrPod("net1 not plugged when the daemon was killed", func(s v1alpha1.InterfaceStatus) bool {
		return s.State != v1alpha1.StatePlugged
	})
	out := e.sh(`i=0
until [ -e /tmp/add1.rc ]; do
	i=$((i+1)); [ $i -lt 600 ] || { echo "the ADD still runs 60 s after the daemon's kill" >&2; exit 1; }
	sleep 0.1
done
echo "rc $(cat /tmp/add1.rc)"
echo "devices $(echo /sys/bus/pci/devices/*)"
echo @@out
cat /tmp/add1.out
echo @@err
cat /tmp/add1.err`)
	head, rest, _ := strings.Cut(out, "@@out\n")
	stdout, stderr, _ := strings.Cut(rest, "@@err\n")
	var rc, devices string
	for _, line := range strings.Split(head, "\n") {
		if v, ok := strings.CutPrefix(line, "rc "); ok {
			rc = v
		}
		if v, ok := strings.CutPrefix(line, "devices "); ok {
			devices = v
		}
	}
	e.t.Logf("where the kill landed: %s; Nova's attach held, so the daemon was waiting for the pod's interfaces (KuryrPod net1: state %q, port %s, pci %q; PCI devices in the guest unchanged: %v)",
		landed, st.State, st.PortID, st.PCIAddress, strings.TrimSpace(devices) == strings.TrimSpace(before))
	if strings.TrimSpace(devices) != strings.TrimSpace(before) {
		e.t.Fatalf("a PCI device reached the guest while Nova's attach was held: %s (before: %s)", devices, before)
	}
	if rc == "0" {
		e.t.Fatalf("the ADD of container %s succeeded though kuryr-daemon was killed while holding it: %s", containerID, stdout)
	}
	var cerr cnitypes.Error
	if err := json.Unmarshal([]byte(stdout), &cerr); err != nil || cerr.Code != cniapi.CodeTryAgainLater || !strings.Contains(cerr.Msg, "did not answer the ADD request") {
		e.t.Fatalf("the killed ADD exited %s with %q (stderr %q), want CNI code %d saying the daemon did not answer the ADD request (parse: %v)",
			rc, stdout, stderr, cniapi.CodeTryAgainLater, err)
	}
	e.t.Logf("the killed ADD of container %s exited %s: CNI code %d: %s", containerID, rc, cerr.Code, cerr.Msg)
	e.sh("/etc/kuryr/start-daemon")
	e.waitDaemonReady()
}

// guestClock maps guest uptimes to host times. The error is half an agent
// round trip (tens of milliseconds) plus the 10 ms resolution of
// /proc/uptime.
func (e *e2e) guestClock() func(uptime float64) time.Time {
	e.t.Helper()
	t0 := time.Now()
	out := e.sh("cut -d' ' -f1 /proc/uptime")
	t1 := time.Now()
	u0, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil {
		e.t.Fatalf("guest uptime %q: %v", out, err)
	}
	mid := t0.Add(t1.Sub(t0) / 2)
	return func(u float64) time.Time { return mid.Add(time.Duration((u - u0) * float64(time.Second))) }
}

// daemonPhases returns the daemon's kuryr_daemon_cni_phase_seconds sums.
func (e *e2e) daemonPhases() string {
	e.t.Helper()
	res, err := e.vm.Agent.Run(e.ctx, "wget -q -O - http://127.0.0.1:9090/metrics | grep '^kuryr_daemon_cni_phase_seconds_sum'")
	if err != nil || res.ExitCode != 0 {
		return fmt.Sprintf("(not available: %v %s)", err, res.Stderr)
	}
	return strings.TrimSpace(res.Stdout)
}
