package vm

import (
	"fmt"
	"strconv"
	"strings"
	"time"
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
