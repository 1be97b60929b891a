package vmenv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/qemu"
)

// KillDaemonMidAdd waits (up to 3 minutes) until a CNI ADD for the pod
// named pod is in flight in the guest and SIGKILLs kuryr-daemon in the same
// guest script that saw it, so that the kill lands while the ADD is
// provably in progress. In flight means both: a kuryr-cni process runs it
// (CNI_COMMAND=ADD and K8S_POD_NAME=pod in its environment), and the daemon
// holds an accepted connection on its socket (the request reached it and is
// not answered yet). The caller holds what the ADD waits for (Nova's
// attach, VMHook.Gate), so that the ADD cannot finish before the kill. It
// returns the guest script's account of the kill.
func KillDaemonMidAdd(ctx context.Context, t testing.TB, vm *qemu.VM, pod string) string {
	t.Helper()
	out := qemu.MustSh(ctx, t, vm, fmt.Sprintf(`pod=%s
sock=%s
addshim() {
	for p in $(pidof kuryr-cni); do
		e=$(tr '\0' '\n' </proc/$p/environ 2>/dev/null)
		echo "$e" | grep -qx 'CNI_COMMAND=ADD' || continue
		echo "$e" | sed -n 's/^CNI_ARGS=//p' | tr ';' '\n' | grep -qx "K8S_POD_NAME=$pod" && echo $p
	done
}
# Connections the daemon accepted on its socket (state 03, connected; the
# listening socket is 01).
held() { grep -c " 03 [0-9]* $sock\$" /proc/net/unix; }
i=0
while :; do
	s=$(addshim); d=$(pidof kuryr-daemon); c=$(held)
	if [ -n "$s" ] && [ -n "$d" ] && [ "$c" -gt 0 ]; then
		kill -9 $d
		echo "kuryr-daemon $d killed (SIGKILL) while kuryr-cni $s ran the ADD of pod $pod and the daemon held $c connection(s) on $sock"
		exit 0
	fi
	i=$((i+1))
	[ $i -lt 1800 ] || { echo "no ADD of pod $pod in flight in 180 s (kuryr-cni '$s', kuryr-daemon '$d', connections $c)" >&2; exit 1; }
	sleep 0.1
done`, pod, cniapi.DefaultSocketPath))
	return strings.TrimSpace(out)
}
