package soak

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/daemon"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// OutageEnv names the length of TestAPIServerOutageOfMinutes' API server
// outage (a Go duration of at least 1m); defaultOutage when unset.
const OutageEnv = "KURYR_APISERVER_OUTAGE"

const (
	defaultOutage = 3 * time.Minute
	// outagePods is how many pods run when the API server stops.
	outagePods = 4
	// kubeletRestartDelay is how long the test, standing in for the
	// kubelet, waits before it starts a kuryr process that exited again
	// (the kubelet's first crash-loop back-off step).
	kubeletRestartDelay = 10 * time.Second
	// outageSettled is how far into the outage the checks of what runs
	// during it start: past kuryr-controller's renew deadline (10 s) and
	// the failed API server probes in a row that make kuryr-daemon not
	// ready (daemon.APIServerProbeFailures, 5 s apart), with one to spare.
	outageSettled = time.Duration(daemon.APIServerProbeFailures+1)*daemon.APIServerProbePeriod + 5*time.Second
)

// TestAPIServerOutageOfMinutes stops kube-apiserver (etcd kept) for
// KURYR_APISERVER_OUTAGE (3m) on the all-in-one while pods with a
// management and a DPDK interface run, kuryr-controller elects its leader
// as deployed (deploy/kuryr-dpdk) and the test restarts any kuryr process
// that exits, as the kubelet would. During the outage: every kuryr-daemon
// keeps running, live (/healthz 200) but not ready (/readyz fails, its
// socket says the API server is unreachable); kuryr-controller exits at
// most once, on losing its lease, and its restart waits without exiting
// again; the pods' links and DPDK binds stay, and UDP between two pods'
// eth0 still flows (nested-macvlan); a sandbox torn down on its
// node gets a successful CNI DEL from the checkpoints (nothing of it left,
// its device back on virtio-pci) and the runtime's new ADD fails with CNI
// code 11 naming the API server. After the API server returns: the daemons
// are ready again, the torn-down pod and a new pod get their networks
// (times logged), the pods deleted at once and then all the others are
// released, the leftover audit finds nothing in any layer with no failed
// count, and no kuryr process panicked or exited again.
func TestAPIServerOutageOfMinutes(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED: the outage lasts minutes (-short given)")
	}
	netnstest.RequireRoot(t)
	outage := envDuration(t, OutageEnv, defaultOutage, time.Minute)
	need := outage + settleBound + 5*time.Minute
	needTime(t, need, outage, OutageEnv, "")
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), need)
	defer cancel()
	env := startEnv(ctx, t, aio.Options{Log: os.Stderr, ControllerArgs: []string{
		// As deploy/kuryr-dpdk runs it (the all-in-one's default is off).
		"--leader-elect=true", "--leader-election-namespace=kuryr-dpdk",
		"--gc-period=30s",
	}}, "kuryr-outage-logs")
	// The kubelet's part: a kuryr process that exits is started again.
	superCtx, stopSupervising := context.WithCancel(context.Background())
	t.Cleanup(stopSupervising) // before env.Close (cleanups run last first)
	kuryr := []*aio.Process{env.Controller}
	for _, n := range env.Nodes {
		kuryr = append(kuryr, n.Daemon)
	}
	sup := superviseAll(superCtx, kuryr, t.Logf)

	if err := env.CreateNADs(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	var pods []*outagePod
	for i := range outagePods {
		p, err := env.CreatePod(ctx, soakPod(fmt.Sprintf("outage-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, &outagePod{name: p.Name, uid: p.UID})
	}
	for _, p := range pods {
		if err := env.WaitPodReady(ctx, namespace, p.name, readyWithin); err != nil {
			t.Fatal(err)
		}
		if err := p.snapshot(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	s := newSoak(env, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2)), t.Logf)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() { s.sample(sampleCtx); close(sampled) }()
	t.Logf("%d pods Ready on %d nodes (management driver %s) %.1f s after the start",
		len(pods), len(env.Nodes), env.MgmtDriver, time.Since(begin).Seconds())
	if env.MgmtDriver != v1alpha1.DriverNestedMACVLAN {
		t.Logf("traffic between pods not checked: %s pods' VLANs do not cross the stand-in nodes' flat fabric", env.MgmtDriver)
	} else if err := checkTraffic(env, pods[1], pods[2]); err != nil {
		t.Fatalf("before the outage: %v", err)
	}

	// The outage.
	down := time.Now()
	if err := env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver stopped (etcd runs); the outage lasts %s", outage)
	sleep(ctx, outageSettled)
	for _, err := range checkNetworks(env, pods) {
		t.Errorf("%.0f s into the outage: %v", time.Since(down).Seconds(), err)
	}
	if err := checkTraffic(env, pods[1], pods[2]); err != nil {
		t.Errorf("%.0f s into the outage: %v", time.Since(down).Seconds(), err)
	}
	for _, err := range checkDaemonsNotReady(ctx, env) {
		t.Errorf("%.0f s into the outage: %v", time.Since(down).Seconds(), err)
	}

	// A sandbox dies on its node: DEL from the checkpoints, then the
	// runtime's new ADD, which must fail for now with "try again later".
	torn := pods[0]
	n0 := env.Node(torn.node)
	before, _ := env.Timing(torn.uid)
	sandbox, err := n0.Kubelet.StopSandbox(ctx, namespace, torn.name)
	if err != nil {
		t.Errorf("during the outage, the CNI DEL of pod %s's sandbox torn down on %s failed: %v", torn.name, n0.Name, err)
	} else {
		t.Logf("during the outage, pod %s's sandbox %.12s torn down on %s: CNI DEL succeeded", torn.name, sandbox, n0.Name)
		if left := n0.SandboxLeftovers(sandbox); len(left) > 0 {
			t.Errorf("after the DEL of sandbox %.12s during the outage, left on %s: %v", sandbox, n0.Name, left)
		}
		if drv := n0.PCI.Driver(torn.dpdkPCI); drv != "virtio-pci" {
			t.Errorf("after the DEL during the outage, pod %s's device %s is on driver %q, want virtio-pci", torn.name, torn.dpdkPCI, drv)
		}
	}
	if addErr := waitFailedAdd(ctx, env, torn, before.Attempts); addErr != nil {
		t.Error(addErr)
	}
	if err := restartedDaemonAnswers(ctx, t, env, sup, pods[len(pods)-1]); err != nil {
		t.Error(err)
	}

	sleep(ctx, time.Until(down.Add(outage)))
	for _, err := range checkNetworks(env, pods[1:]) {
		t.Errorf("at the end of the outage: %v", err)
	}
	if err := checkTraffic(env, pods[2], pods[1]); err != nil {
		t.Errorf("at the end of the outage: %v", err)
	}
	for _, err := range checkDaemonsNotReady(ctx, env) {
		t.Errorf("at the end of the outage: %v", err)
	}
	if tm, _ := env.Timing(torn.uid); tm.AddDone != before.AddDone {
		t.Errorf("pod %s's new sandbox got a successful ADD during the outage (at %s)", torn.name, tm.AddDone.Format(time.RFC3339))
	}

	// The API server returns.
	if err := env.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	t.Logf("kube-apiserver ready again after an outage of %.1f s", back.Sub(down).Seconds())
	pc := env.Clientset.CoreV1().Pods(namespace)
	for _, p := range pods[1:] { // deleted at once
		if err := pc.Delete(ctx, p.name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete pod %s right after the outage: %v", p.name, err)
		}
	}
	var fresh []*outagePod
	for i := range 2 {
		p, err := env.CreatePod(ctx, soakPod(fmt.Sprintf("after-%d", i)))
		if err != nil {
			t.Fatalf("create a pod right after the outage: %v", err)
		}
		fresh = append(fresh, &outagePod{name: p.Name, uid: p.UID})
	}
	for _, n := range env.Nodes {
		if err := cniapi.NewClient(n.Socket).WaitReady(ctx, time.Minute); err != nil {
			t.Errorf("kuryr-daemon of %s not ready a minute after the API server returned: %v", n.Name, err)
			continue
		}
		t.Logf("kuryr-daemon of %s ready %.1f s after the API server returned", n.Name, time.Since(back).Seconds())
	}
	if err := waitReplugged(ctx, t, env, torn, back); err != nil {
		t.Error(err)
	}
	for _, p := range fresh {
		if err := env.WaitPodReady(ctx, namespace, p.name, readyWithin); err != nil {
			t.Errorf("a pod created right after the outage: %v", err)
			continue
		}
		tm, _ := env.Timing(p.uid)
		t.Logf("pod %s, created %.1f s after the API server returned, got its networks %.1f s after its creation (%s)",
			p.name, tm.Created.Sub(back).Seconds(), tm.NetworkReady().Seconds(), stages(ctx, env, p.name, tm.Created))
	}
	if at, ok := leaseTaken(env, back); ok {
		t.Logf("kuryr-controller took its Lease %.1f s after the API server returned", at.Sub(back).Seconds())
	}
	t.Logf("the API server returned %.1f s ago; deleting the rest and settling", time.Since(back).Seconds())

	settled, settleErr := s.settle(ctx, settleBound)
	stopSampling()
	<-sampled
	report := s.audit(settled)
	report.title = "API server outage audit (pods deleted"
	t.Log("\n" + report.String())
	if settleErr != nil {
		t.Errorf("settle: %v", settleErr)
	}
	if !report.clean() {
		t.Errorf("the audit found leftovers or failed counts:\n%s", strings.Join(report.details(), "\n"))
	}
	if err := errors.Join(report.unexercised()...); err != nil {
		t.Error(err)
	}
	stopSupervising()
	for _, err := range sup.verdict(env, down, back) {
		t.Error(err)
	}
	for _, err := range panics(env) {
		t.Error(err)
	}
	t.Logf("outage of %s: the test took %.1f s", outage, time.Since(begin).Seconds())
}

// outagePod is one pod of the outage test and what it had before.
type outagePod struct {
	name string
	uid  types.UID
	node string
	// netns is its sandbox's network namespace, links its kernel
	// interfaces there (name → MAC), dpdkPCI and bound its DPDK device and
	// the driver it is bound to.
	netns          string
	links          map[string]string
	dpdkPCI, bound string
	// ip is eth0's address.
	ip net.IP
}

// snapshot records where the pod runs and what its KuryrPod says it has.
func (p *outagePod) snapshot(ctx context.Context, env *aio.Env) error {
	var pod corev1.Pod
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: p.name}, &pod); err != nil {
		return err
	}
	p.node = pod.Spec.NodeName
	n := env.Node(p.node)
	if n == nil || n.Kubelet == nil {
		return fmt.Errorf("pod %s is on %q, not a stand-in node of the environment", p.name, p.node)
	}
	p.netns = n.Kubelet.NetNS(namespace, p.name)
	var kp v1alpha1.KuryrPod
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: p.name}, &kp); err != nil {
		return err
	}
	p.links = map[string]string{}
	for _, st := range kp.Status.Interfaces {
		if st.Driver == v1alpha1.DriverNestedDPDK {
			p.dpdkPCI, p.bound = st.PCIAddress, st.BoundDriver
			continue
		}
		p.links[st.IfName] = st.MAC
	}
	if p.netns == "" || p.dpdkPCI == "" || p.bound == "" || len(p.links) == 0 {
		return fmt.Errorf("pod %s: sandbox %q, DPDK device %q on %q, links %v: want all of them", p.name, p.netns, p.dpdkPCI, p.bound, p.links)
	}
	links, err := aio.Links(p.netns)
	if err != nil {
		return err
	}
	if eth0 := links["eth0"]; len(eth0.Addrs) > 0 {
		p.ip, _, _ = net.ParseCIDR(eth0.Addrs[0])
	}
	if p.ip == nil {
		return fmt.Errorf("pod %s: eth0 has no address in %s (%v)", p.name, p.netns, links)
	}
	return nil
}

// checkTraffic sends UDP from one pod's namespace to another's eth0 address
// (aio.UDPReaches). nested-macvlan only: the stand-in nodes' fabric is
// one flat bridge, which carries untagged traffic between the nodes' NICs
// but no pod's VLAN (each nested-vlan pod has its own VLAN ID).
func checkTraffic(env *aio.Env, from, to *outagePod) error {
	if env.MgmtDriver != v1alpha1.DriverNestedMACVLAN {
		return nil
	}
	if err := aio.UDPReaches(from.netns, to.netns, to.ip, 5*time.Second); err != nil {
		return fmt.Errorf("traffic from pod %s (%s) to pod %s (%s, %s): %w", from.name, from.node, to.name, to.node, to.ip, err)
	}
	return nil
}

// checkNetworks looks, on the nodes alone, at what the pods had before the
// outage: their kernel interfaces in their namespaces (name and MAC) and
// their DPDK devices on the driver they were bound to.
func checkNetworks(env *aio.Env, pods []*outagePod) []error {
	var errs []error
	for _, p := range pods {
		links, err := aio.Links(p.netns)
		if err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", p.name, err))
			continue
		}
		for name, mac := range p.links {
			if l, ok := links[name]; !ok || !strings.EqualFold(l.MAC, mac) {
				errs = append(errs, fmt.Errorf("pod %s: link %s (MAC %s) not in its namespace %s as it was (links now %v)", p.name, name, mac, p.netns, links))
			}
		}
		if drv := env.Node(p.node).PCI.Driver(p.dpdkPCI); drv != p.bound {
			errs = append(errs, fmt.Errorf("pod %s: DPDK device %s on driver %q, was bound to %s", p.name, p.dpdkPCI, drv, p.bound))
		}
	}
	return errs
}

// checkDaemonsNotReady asks every kuryr-daemon what the DaemonSet's probes
// and the shim ask: liveness must hold (restarting the daemon cannot end
// the outage), readiness must fail, and the socket must say why (the shim
// passes it to the runtime with an ADD's code 11).
func checkDaemonsNotReady(ctx context.Context, env *aio.Env) []error {
	var errs []error
	hc := &http.Client{Timeout: 2 * time.Second}
	get := func(url string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	for _, n := range env.Nodes {
		if code, err := get(n.DaemonProbes + "/healthz"); err != nil || code != http.StatusOK {
			errs = append(errs, fmt.Errorf("kuryr-daemon of %s: liveness /healthz answered %d (%v), want 200: its kubelet would restart it for an outage a restart cannot end", n.Name, code, err))
		}
		if code, err := get(n.DaemonProbes + "/readyz"); err == nil && code == http.StatusOK {
			errs = append(errs, fmt.Errorf("kuryr-daemon of %s: readiness /readyz answered 200, want a failure: it cannot serve ADDs without the API server", n.Name))
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := cniapi.NewClient(n.Socket).Healthz(hctx)
		cancel()
		var nr *cniapi.NotReadyError
		if !errors.As(err, &nr) || !strings.Contains(nr.Reason, daemon.ErrAPIServerUnreachable.Error()) {
			errs = append(errs, fmt.Errorf("kuryr-daemon of %s: its socket's health is %v, want not ready because %q", n.Name, err, daemon.ErrAPIServerUnreachable))
		}
	}
	return errs
}

// waitFailedAdd waits for the stand-in's new ADD of pod p (after attempts
// before) to fail, and checks how: CNI code 11 (the runtime retries),
// naming the API server.
func waitFailedAdd(ctx context.Context, env *aio.Env, p *outagePod, attempts int) error {
	var tm aio.Timing
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		tm, _ = env.Timing(p.uid)
		return tm.Attempts > attempts && tm.LastAddError != nil, nil
	})
	if err != nil {
		return fmt.Errorf("during the outage, no failed ADD of pod %s's new sandbox within a minute (%d attempts, last error %v)", p.name, tm.Attempts, tm.LastAddError)
	}
	var ce *cnitypes.Error
	if !errors.As(tm.LastAddError, &ce) || ce.Code != cniapi.CodeTryAgainLater || !strings.Contains(ce.Msg, daemon.ErrAPIServerUnreachable.Error()) {
		return fmt.Errorf("during the outage, the CNI ADD of pod %s's new sandbox failed with %v; want CNI code %d (try again later) saying %q",
			p.name, tm.LastAddError, cniapi.CodeTryAgainLater, daemon.ErrAPIServerUnreachable)
	}
	return nil
}

// waitReplugged waits until the stand-in's new sandbox of pod p has had a
// successful ADD after back, then checks its networks in it.
func waitReplugged(ctx context.Context, t *testing.T, env *aio.Env, p *outagePod, back time.Time) error {
	var tm aio.Timing
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		tm, _ = env.Timing(p.uid)
		return tm.AddDone.After(back), nil
	})
	if err != nil {
		return fmt.Errorf("pod %s's new sandbox had no successful ADD within 2 minutes of the API server's return (%d attempts, last error %v)",
			p.name, tm.Attempts, tm.LastAddError)
	}
	t.Logf("pod %s's new sandbox got its networks %.1f s after the API server returned (%d ADD attempts in all)",
		p.name, tm.AddDone.Sub(back).Seconds(), tm.Attempts)
	p.netns = env.Node(p.node).Kubelet.NetNS(namespace, p.name)
	return errors.Join(checkNetworks(env, []*outagePod{p})...)
}

// restartedDaemonAnswers kills the kuryr-daemon of p's node during the
// outage and, once the kubelet's part started it again, tears p's sandbox
// down: the new daemon cannot run its start-up reconcile (it needs the API
// server) but serves its socket at once, so the runtime's DEL is answered
// "try again later" (code 11) within the daemon's start-up wait, not held
// until the API server returns. Nothing is undone: p keeps its networks,
// checked with the others at the end of the outage, and the stand-in
// kubelet keeps the sandbox for a later DEL.
func restartedDaemonAnswers(ctx context.Context, t *testing.T, env *aio.Env, sup *supervisor, p *outagePod) error {
	n := env.Node(p.node)
	old := n.Daemon.Pid()
	if err := sup.kill(n.Daemon); err != nil {
		return fmt.Errorf("kill the kuryr-daemon of %s during the outage: %w", n.Name, err)
	}
	c := cniapi.NewClient(n.Socket)
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if pid := n.Daemon.Pid(); pid == old || pid == 0 {
			return false, nil
		}
		return !errors.As(c.Healthz(ctx), new(*cniapi.UnreachableError)), nil
	})
	if err != nil {
		return fmt.Errorf("the kuryr-daemon of %s, killed during the outage, was not started again and listening within a minute: %w", n.Name, err)
	}
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	_, err = n.Kubelet.StopSandbox(dctx, namespace, p.name)
	took := time.Since(start)
	var ce *cnitypes.Error
	if !errors.As(err, &ce) || ce.Code != cniapi.CodeTryAgainLater || !strings.Contains(ce.Msg, "kuryr-daemon is starting") {
		return fmt.Errorf("the kuryr-daemon of %s, restarted during the outage, answered the DEL of pod %s after %.1f s with %v; want code %d, kuryr-daemon is starting",
			n.Name, p.name, took.Seconds(), err, cniapi.CodeTryAgainLater)
	}
	t.Logf("the kuryr-daemon of %s, restarted during the outage, answered the DEL of pod %s's sandbox in %.1f s: code %d, %s",
		n.Name, p.name, took.Seconds(), ce.Code, ce.Msg)
	return nil
}

// supervisor restarts the kuryr processes that exit, as the kubelet
// restarts a pod's crashed container, and records every exit.
type supervisor struct {
	mu    sync.Mutex
	exits []procExit
	// killed counts the exits the test caused, by process name.
	killed map[string]int
}

// kill SIGKILLs p, an exit the verdict then allows.
func (s *supervisor) kill(p *aio.Process) error {
	s.mu.Lock()
	if s.killed == nil {
		s.killed = map[string]int{}
	}
	s.killed[p.Name]++
	s.mu.Unlock()
	return syscall.Kill(p.Pid(), syscall.SIGKILL)
}

type procExit struct {
	proc string
	at   time.Time
	err  error
	tail string // the end of its log: why it stopped
}

// superviseAll watches procs until ctx ends: a process that exits is
// started again after kubeletRestartDelay.
func superviseAll(ctx context.Context, procs []*aio.Process, logf func(string, ...any)) *supervisor {
	s := &supervisor{}
	for _, p := range procs {
		go func() {
			for {
				done, exitErr := p.Exited()
				select {
				case <-ctx.Done():
					return
				case <-done:
				}
				if ctx.Err() != nil {
					return
				}
				ex := procExit{proc: p.Name, at: time.Now(), err: exitErr(), tail: p.Tail(20)}
				s.mu.Lock()
				s.exits = append(s.exits, ex)
				s.mu.Unlock()
				logf("%s exited (%v); starting it again in %s, as its kubelet would; its log ends:%s", p.Name, ex.err, kubeletRestartDelay, p.Tail(3))
				sleep(ctx, kubeletRestartDelay)
				if ctx.Err() != nil {
					return
				}
				if err := p.Start(); err != nil {
					logf("start %s again: %v", p.Name, err)
					return
				}
			}
		}()
	}
	return s
}

// verdict checks the exits against what an outage from down to back
// allows: no kuryr-daemon exits; kuryr-controller exits only on losing its
// lease, at most once during the outage (its restart waits for the API
// server, no crash loop) and never after it.
func (s *supervisor) verdict(env *aio.Env, down, back time.Time) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	during := 0
	killed := maps.Clone(s.killed)
	for _, ex := range s.exits {
		if killed[ex.proc] > 0 {
			killed[ex.proc]--
			continue
		}
		phase := "before the outage"
		switch {
		case ex.at.After(back):
			phase = "after the outage"
		case ex.at.After(down):
			phase = "during the outage"
		}
		if ex.proc != env.Controller.Name {
			errs = append(errs, fmt.Errorf("%s exited %s (%v): a daemon has no lease to lose; its log ends:%s", ex.proc, phase, ex.err, ex.tail))
			continue
		}
		if !strings.Contains(ex.tail, "leader election lost") {
			errs = append(errs, fmt.Errorf("%s exited %s (%v), not on losing its lease; its log ends:%s", ex.proc, phase, ex.err, ex.tail))
		}
		switch phase {
		case "during the outage":
			during++
		case "after the outage":
			errs = append(errs, fmt.Errorf("%s exited after the API server returned (%v)", ex.proc, ex.err))
		}
	}
	if during > 1 {
		errs = append(errs, fmt.Errorf("%s exited %d times during the outage: a crash loop", env.Controller.Name, during))
	}
	return errs
}

// panics lists the kuryr processes whose logs show a panic.
func panics(env *aio.Env) []error {
	var errs []error
	for _, p := range env.Processes() {
		if !strings.HasPrefix(p.Name, "kuryr-") {
			continue
		}
		b, err := os.ReadFile(p.Log)
		if err != nil {
			errs = append(errs, fmt.Errorf("read the log of %s: %w", p.Name, err))
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "panic:") || strings.Contains(line, "Observed a panic") || strings.HasPrefix(line, "fatal error:") {
				errs = append(errs, fmt.Errorf("%s: %s (log %s)", p.Name, line, p.Log))
				break
			}
		}
	}
	return errs
}

// stages says when, after created, the pod was scheduled and its KuryrPod
// made (kuryr-controller acting): the API's timestamps, to the second.
func stages(ctx context.Context, env *aio.Env, name string, created time.Time) string {
	var pod corev1.Pod
	var kp v1alpha1.KuryrPod
	key := client.ObjectKey{Namespace: namespace, Name: name}
	if env.Client.Get(ctx, key, &pod) != nil || env.Client.Get(ctx, key, &kp) != nil {
		return "stages unknown"
	}
	scheduled := "?"
	if c := aio.PodCondition(&pod, corev1.PodScheduled); c != nil {
		scheduled = fmt.Sprintf("%.0f s", c.LastTransitionTime.Sub(created.Truncate(time.Second)).Seconds())
	}
	return fmt.Sprintf("scheduled at %s, its KuryrPod made at %.0f s, to the second", scheduled,
		kp.CreationTimestamp.Sub(created.Truncate(time.Second)).Seconds())
}

// leaseTaken is when kuryr-controller's log says it took its Lease after
// back (klog's time of day, on back's day).
func leaseTaken(env *aio.Env, back time.Time) (time.Time, bool) {
	b, err := os.ReadFile(env.Controller.Log)
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "Successfully acquired lease") || len(line) < 21 {
			continue
		}
		tod, err := time.ParseInLocation("15:04:05.000000", line[6:21], back.Location())
		if err != nil {
			continue
		}
		at := time.Date(back.Year(), back.Month(), back.Day(), tod.Hour(), tod.Minute(), tod.Second(), tod.Nanosecond(), back.Location())
		if at.After(back) {
			return at, true
		}
	}
	return time.Time{}, false
}
