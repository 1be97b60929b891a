package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// Profile is a set of simulated cloud latencies, by cloudsim operation
// pattern (see cloudsim.Cloud.SetLatency).
type Profile struct {
	Name    string
	Latency map[string]cloudsim.Latency
}

// Profiles are the cloud profiles of `make bench`. "zero" measures our own
// overhead. "realistic": Neutron port create 0.3 s + U[0,0.7 s) + Exp(0.3 s)
// (mean 0.95 s; the real neutron-server of bench-neutron served POST
// /v2.0/ports in 0.2–0.6 s alone and 1.1–2.9 s under 10–50 pods); Nova
// interface attach 2 s + U[0,4 s) + Exp(1 s) (mean 5 s; an assumption from
// public reports of os-interface attach taking seconds: Nova waits for
// Neutron's network-vif-plugged event and libvirt's device hot-plug);
// every other Neutron and Nova call 50 ms + U[0,100 ms) + Exp(25 ms)
// (bench-neutron measured 18–160 ms for GETs and 157 ms+ for add_subports).
var Profiles = map[string]Profile{
	"zero": {Name: "zero"},
	"realistic": {Name: "realistic", Latency: map[string]cloudsim.Latency{
		"neutron.*":              {Fixed: 50 * time.Millisecond, Jitter: 100 * time.Millisecond, Exp: 25 * time.Millisecond},
		"nova.*":                 {Fixed: 50 * time.Millisecond, Jitter: 100 * time.Millisecond, Exp: 25 * time.Millisecond},
		"neutron.ports.create":   {Fixed: 300 * time.Millisecond, Jitter: 700 * time.Millisecond, Exp: 300 * time.Millisecond},
		"nova.interfaces.attach": {Fixed: 2 * time.Second, Jitter: 4 * time.Second, Exp: time.Second},
	}},
}

// AIOConfig is one all-in-one run: N pods over Nodes nodes under Profile.
type AIOConfig struct {
	N, Nodes int
	Profile  Profile
	// ProfileDir, when set, gets the controller's heap profile at the end
	// of the run (heap-<profile>-<N>.pb.gz, from its /debug/pprof) and
	// at its highest RSS. Without it the controller and daemons run
	// without their profiling endpoint: a heap profile's fetch (its
	// symbols, its gzip) and the CPU profiler's buffers count in the
	// process's RSS, so a run that measures memory goes without.
	ProfileDir string
	// DPDKPool, with Max set, runs with warm pre-attached DPDK pools: the
	// controller declares them on the data-plane network (aio
	// Options.DPDKPool), and the pods are created once every node's pools
	// are filled. PodPools pools eth0 and the management interface too
	// (aio Options.PodPools; pools of the same size).
	DPDKPool aio.PoolSize
	PodPools bool
	// CPUProfileSeconds, with ProfileDir, records CPU profiles of the
	// controller and of node-1's daemon over that many seconds from the
	// first pod create (cpu-<process>-<profile>-<N>.pb.gz, from their
	// /debug/pprof/profile).
	CPUProfileSeconds int
	// BinDir holds the project's binaries; RepoRoot the repository.
	BinDir, RepoRoot string
	// Timeout bounds the wait for the pods (the run is reported as it is then).
	Timeout time.Duration
	// Parallel bounds the pod create calls in flight.
	Parallel int
	// Log receives progress lines.
	Log func(format string, args ...any)
}

// PodTimes are one pod's timestamps; zero when never seen.
type PodTimes struct {
	Name string
	UID  types.UID
	Node string
	// Created: just before the create call (client side).
	Created time.Time
	// KuryrPod: the first watch event of its KuryrPod.
	KuryrPod time.Time
	// Active: when the watch first saw each interface Active (or already
	// Plugged), by interface name.
	Active map[string]time.Time
	// AddStart and AddDone bracket the successful CNI ADD (kubelet stand-in).
	AddStart, AddDone time.Time
	Attempts          int
	// LastAddError is the error of the pod's last failed ADD, if any.
	LastAddError string `json:",omitempty"`
}

// AllActive is when the last interface was first seen Active.
func (p PodTimes) AllActive(want int) time.Time {
	if len(p.Active) < want {
		return time.Time{}
	}
	var last time.Time
	for _, t := range p.Active {
		if t.After(last) {
			last = t
		}
	}
	return last
}

// AIOResult is one run.
type AIOResult struct {
	Profile  string
	N, Nodes int
	// DPDKPool is the size of each node's pools (zero: no pools), Pooled
	// the interfaces whose ports came from them (dpdk0 alone in results
	// written before it was recorded), and PoolWarm how long the pools
	// took to fill before the pods were made.
	DPDKPool aio.PoolSize  `json:",omitzero"`
	Pooled   []string      `json:",omitempty"`
	PoolWarm time.Duration `json:",omitzero"`
	// CPUProfiles are the files of the CPU profiles recorded in the run,
	// over its first CPUSeconds.
	CPUProfiles []string `json:",omitempty"`
	CPUSeconds  int      `json:",omitzero"`
	// Unprofiled: the run's processes served no profiles (its memory is
	// theirs alone).
	Unprofiled bool          `json:",omitempty"`
	StartUp    time.Duration // the environment's start
	Wall       time.Duration // first create call → last ADD returned
	Pods       []PodTimes
	Ready      int // pods whose ADD returned in time
	TimedOut   bool
	CloudOps   map[string]int64 // cloudsim.Counts delta over the run
	Phases     map[string]Histogram
	ADD        Histogram // kuryr_daemon_cni_request_duration_seconds{verb="ADD"} summed over daemons
	Controll   Memory
	Daemon     Memory // the daemon of node-1
	DaemonMax  int64  // the highest VmHWM among all daemons
	Machine    Machine
	LoadAvg    [2]string
	// The controller's Go heap in use and goroutines at the end (its
	// /metrics, which the bench turns on).
	ControllerHeapInuse, ControllerGoroutines float64
	// ControllerLoad is where the controller's time went from the first
	// pod create to the last ADD's return.
	ControllerLoad ControllerLoad `json:",omitzero"`
	// CPU is where the machine's CPU time went over the same window.
	CPU CPUUse `json:",omitzero"`
	// APIServer is what kube-apiserver served over the same window, from
	// every client, by kind of request.
	APIServer []APIRequests `json:",omitempty"`
	// ControllerPeakAt is when, after the first pod create, the
	// controller's RSS was highest (sampled every peakSampleEvery), and
	// PeakHeapProfile the heap profile fetched then (empty without one).
	ControllerPeakAt time.Duration `json:",omitzero"`
	PeakHeapProfile  string        `json:",omitempty"`
	// VMErrors are what went wrong in the simulated node VMs (a hot-plug
	// that failed after Nova answered, a netdev not mirrored in the node's
	// namespace, errors of the simulated PCI bus),
	// one line each, naming the node; at most maxVMErrors.
	VMErrors []string `json:",omitempty"`
}

// maxVMErrors bounds AIOResult.VMErrors.
const maxVMErrors = 20

// vmErrors returns what went wrong in the simulated VMs of env's nodes
// (see AIOResult.VMErrors), and how many there were in all.
func vmErrors(env *aio.Env) ([]string, int) {
	var out []string
	n := 0
	add := func(line string) {
		if n++; len(out) < maxVMErrors {
			out = append(out, line)
		}
	}
	for _, node := range env.Nodes {
		for _, ev := range node.History() {
			if strings.HasPrefix(ev.Kind, "hotplug-failed") || strings.HasPrefix(ev.Kind, "netdev-mirror-failed") {
				add(fmt.Sprintf("%s %s: %s of port %s (MAC %s) at %s", ev.Time.UTC().Format("15:04:05.000"), node.Name, ev.Kind, ev.PortID, ev.MAC, ev.Addr))
			}
		}
		for _, err := range node.PCI.Errors() {
			add(fmt.Sprintf("%s: simulated PCI bus: %v", node.Name, err))
		}
	}
	return out, n
}

// peakSampleEvery is how often the bench reads the controller's RSS to
// find when it peaks.
const peakSampleEvery = 500 * time.Millisecond

// peakSample is what samplePeak found.
type peakSample struct {
	at      time.Duration
	profile string
}

// samplePeak reads the controller's VmRSS every peakSampleEvery from start
// until ctx ends and records in res when it was highest; with a path,
// each time the RSS passes its highest so far by 4 MiB or more the
// controller's heap profile is fetched from pprofURL into path, named name
// in res (the last one is the nearest the peak).
func samplePeak(ctx context.Context, pid int, start time.Time, pprofURL, path, name string, res *peakSample) {
	var top, profiled int64
	t := time.NewTicker(peakSampleEvery)
	defer t.Stop()
	for {
		if m, err := ReadMemory("/proc", pid); err == nil && m.RSS > top {
			top = m.RSS
			res.at = time.Since(start)
			if path != "" && top-profiled >= 4<<20 {
				if err := fetch(ctx, pprofURL, path); err == nil {
					profiled, res.profile = top, name
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Interfaces each bench pod asks for.
var benchIfaces = []string{"eth0", "net1", "dpdk0"}

// RunAIO starts an all-in-one environment, creates N pods at once, waits
// until each one's CNI ADD returned (or cfg.Timeout), measures, and closes
// the environment whatever happens.
func RunAIO(ctx context.Context, cfg AIOConfig) (res AIOResult, err error) {
	res = AIOResult{Profile: cfg.Profile.Name, N: cfg.N, Nodes: cfg.Nodes, DPDKPool: cfg.DPDKPool, Machine: ReadMachine("/proc"),
		Unprofiled: cfg.ProfileDir == ""}
	switch {
	case cfg.DPDKPool.Max > 0 && cfg.PodPools:
		res.Pooled = benchIfaces
	case cfg.DPDKPool.Max > 0:
		res.Pooled = []string{"dpdk0"}
	}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	t0 := time.Now()
	metricsAddr, err := freeLoopback()
	if err != nil {
		return res, err
	}
	env, err := aio.Start(ctx, aio.Options{Nodes: cfg.Nodes, BinDir: cfg.BinDir, RepoRoot: cfg.RepoRoot, Pprof: cfg.ProfileDir != "",
		DPDKPool: cfg.DPDKPool, PodPools: cfg.PodPools, DataPlaneCIDR: benchDataPlaneCIDR, ManagementCIDR: benchManagementCIDR,
		ControllerArgs: []string{"--metrics-bind-address=" + metricsAddr, "--metrics-secure=false"}})
	if err != nil {
		return res, fmt.Errorf("start the all-in-one with %d nodes: %w", cfg.Nodes, err)
	}
	defer func() {
		logf("closing the environment %s", env.ID)
		if cerr := env.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close environment %s: %w", env.ID, cerr)
		}
	}()
	res.StartUp = time.Since(t0)
	logf("environment %s up in %.1f s (%d nodes)", env.ID, res.StartUp.Seconds(), cfg.Nodes)

	const ns = "kuryr-bench"
	if err := createBenchNADs(ctx, env, ns, cfg.DPDKPool.Max > 0); err != nil {
		return res, err
	}
	if cfg.DPDKPool.Max > 0 {
		// Filled before the profile's latencies are set: not measured.
		t := time.Now()
		if err := env.WaitPools(ctx, 5*time.Minute); err != nil {
			return res, err
		}
		res.PoolWarm = time.Since(t)
		logf("pools of %d ports for %s filled on %d nodes in %.1f s", cfg.DPDKPool.Min, strings.Join(res.Pooled, ", "), cfg.Nodes, res.PoolWarm.Seconds())
	}
	wc, err := watchClient(env.Kubeconfig())
	if err != nil {
		return res, err
	}
	tracker := newKPTracker()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go tracker.run(wctx, wc, ns)

	for op, l := range cfg.Profile.Latency {
		env.Cloud.SetLatency(op, l)
	}
	before := env.Cloud.Counts()
	murl := "http://" + metricsAddr + "/metrics"
	loadBefore, err := scrapeControllerLoad(ctx, murl)
	if err != nil {
		return res, err
	}
	res.LoadAvg[0] = loadAvg("/proc")

	var cpu sync.WaitGroup
	defer cpu.Wait() // before the environment closes
	if cfg.CPUProfileSeconds > 0 && cfg.ProfileDir != "" {
		names, err := startCPUProfiles(ctx, &cpu, env, cfg, logf)
		if err != nil {
			return res, err
		}
		res.CPUProfiles, res.CPUSeconds = names, cfg.CPUProfileSeconds
	}
	pods := make([]PodTimes, cfg.N)
	procs := watchedProcesses(env)
	cpuBefore, err := takeCPU("/proc", procs)
	if err != nil {
		return res, err
	}
	apiBefore, err := scrapeAPIServer(ctx, env.Clientset)
	if err != nil {
		return res, err
	}
	start := time.Now()
	var peak sync.WaitGroup
	var pk peakSample
	pctx, stopPeak := context.WithCancel(ctx)
	defer func() { stopPeak(); peak.Wait() }()
	{
		var pprofURL, path, name string
		if cfg.ProfileDir != "" {
			if addr, err := bindAddress("/proc", env.Controller.Pid(), "pprof-bind-address"); err == nil {
				name = fmt.Sprintf("heap-%s-%d-peak.pb.gz", cfg.Profile.Name, cfg.N)
				pprofURL, path = "http://"+addr+"/debug/pprof/heap", filepath.Join(cfg.ProfileDir, name)
			}
		}
		peak.Go(func() { samplePeak(pctx, env.Controller.Pid(), start, pprofURL, path, name, &pk) })
	}
	if err := createPods(ctx, env, ns, pods, max(1, cfg.Parallel)); err != nil {
		return res, err
	}
	logf("%d pods created in %.1f s", cfg.N, time.Since(start).Seconds())

	deadline := time.Now().Add(cfg.Timeout)
	lastLog := time.Now()
	for {
		ready := 0
		for i := range pods {
			if !pods[i].AddDone.IsZero() {
				ready++
				continue
			}
			if t, ok := env.Timing(pods[i].UID); ok && !t.AddDone.IsZero() {
				pods[i].AddStart, pods[i].AddDone, pods[i].Attempts = t.AddStart, t.AddDone, t.Attempts
				if t.LastAddError != nil {
					pods[i].LastAddError = t.LastAddError.Error()
				}
				ready++
			}
		}
		res.Ready = ready
		if ready == cfg.N {
			break
		}
		if time.Now().After(deadline) {
			res.TimedOut = true
			logf("timeout after %s: %d of %d pods network-ready", cfg.Timeout, ready, cfg.N)
			break
		}
		if time.Since(lastLog) > 10*time.Second {
			logf("%d/%d pods network-ready after %.0f s", ready, cfg.N, time.Since(start).Seconds())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, p := range pods {
		if p.AddDone.After(start.Add(res.Wall)) {
			res.Wall = p.AddDone.Sub(start)
		}
	}
	res.LoadAvg[1] = loadAvg("/proc")
	cpuAfter, err := takeCPU("/proc", procs)
	if err != nil {
		return res, err
	}
	res.CPU = cpuUse(cpuBefore, cpuAfter, runtime.NumCPU())
	apiAfter, err := scrapeAPIServer(ctx, env.Clientset)
	if err != nil {
		return res, err
	}
	res.APIServer = apiRequests(apiBefore, apiAfter)
	after := env.Cloud.Counts()
	loadAfter, err := scrapeControllerLoad(ctx, murl)
	if err != nil {
		return res, err
	}
	res.ControllerLoad = controllerLoad(loadBefore, loadAfter)
	res.CloudOps = map[string]int64{}
	for op, v := range after {
		if d := v - before[op]; d > 0 {
			res.CloudOps[op] = d
		}
	}
	stopWatch()
	for i := range pods {
		pods[i].KuryrPod, pods[i].Active = tracker.get(pods[i].Name)
		if t, ok := env.Timing(pods[i].UID); ok && pods[i].AddStart.IsZero() {
			pods[i].Attempts = t.Attempts
			if t.LastAddError != nil {
				pods[i].LastAddError = t.LastAddError.Error()
			}
		}
	}
	res.Pods = pods

	res.Phases, res.ADD = map[string]Histogram{}, Histogram{}
	for _, n := range env.Nodes {
		if n.Daemon == nil {
			continue
		}
		url, err := metricsURL("/proc", n.Daemon.Pid())
		if err != nil {
			return res, err
		}
		hs, err := ScrapeHistograms(ctx, url, "kuryr_daemon_cni_phase_seconds", "phase")
		if err != nil {
			return res, err
		}
		for k, h := range hs {
			res.Phases[k] = res.Phases[k].Add(h)
		}
		req, err := ScrapeHistograms(ctx, url, "kuryr_daemon_cni_request_duration_seconds", "verb")
		if err != nil {
			return res, err
		}
		res.ADD = res.ADD.Add(req["ADD"])
		if m, err := ReadMemory("/proc", n.Daemon.Pid()); err == nil {
			res.DaemonMax = max(res.DaemonMax, m.Peak)
			if n == env.Nodes[0] {
				res.Daemon = m
			}
		}
	}
	stopPeak()
	peak.Wait()
	errs, nerrs := vmErrors(env)
	for _, e := range errs {
		logf("simulated VM: %s", e)
	}
	if nerrs > len(errs) {
		errs = append(errs, fmt.Sprintf("… %d more", nerrs-len(errs)))
	}
	res.VMErrors = errs
	res.ControllerPeakAt, res.PeakHeapProfile = pk.at, pk.profile
	if res.Controll, err = ReadMemory("/proc", env.Controller.Pid()); err != nil {
		return res, err
	}
	if v, err := ScrapeCounter(ctx, murl, "go_memstats_heap_inuse_bytes"); err == nil {
		res.ControllerHeapInuse = v[""]
	}
	if v, err := ScrapeCounter(ctx, murl, "go_goroutines"); err == nil {
		res.ControllerGoroutines = v[""]
	}
	if cfg.ProfileDir != "" {
		pprofAddr, err := bindAddress("/proc", env.Controller.Pid(), "pprof-bind-address")
		if err != nil {
			return res, err
		}
		name := fmt.Sprintf("heap-%s-%d.pb.gz", cfg.Profile.Name, cfg.N)
		if err := fetch(ctx, "http://"+pprofAddr+"/debug/pprof/heap", filepath.Join(cfg.ProfileDir, name)); err != nil {
			logf("heap profile: %v", err)
		} else {
			logf("controller heap profile in %s (go tool pprof -top %s)", name, name)
		}
	}
	cpu.Wait()
	return res, nil
}

// watchedProcesses are the processes whose CPU time a run reports: the
// environment's (the nodes' daemons under one name), the bench process
// itself and the programs it runs and waits for.
func watchedProcesses(env *aio.Env) []watched {
	var out []watched
	for _, p := range env.Processes() {
		name := p.Name
		for _, n := range env.Nodes {
			name = strings.TrimSuffix(name, "-"+n.Name)
		}
		out = append(out, watched{name: name, pid: p.Pid()})
	}
	self := os.Getpid()
	return append(out,
		watched{name: "bench-aio (kubelet stand-ins, simulated cloud and VMs)", pid: self},
		watched{name: "programs bench-aio ran and waited for (CNI plugins)", pid: self, children: true})
}

// startCPUProfiles starts recording CPU profiles of the controller, of
// node-1's daemon and of kube-apiserver, cfg.CPUProfileSeconds long each,
// into cfg.ProfileDir, and returns their file names; wg is done when all
// are written.
func startCPUProfiles(ctx context.Context, wg *sync.WaitGroup, env *aio.Env, cfg AIOConfig, logf func(string, ...any)) ([]string, error) {
	procs := []struct {
		name string
		p    *aio.Process
	}{{"controller", env.Controller}, {"daemon-node-1", env.Nodes[0].Daemon}}
	var names []string
	record := func(what, name string, get func() ([]byte, error)) {
		names = append(names, name)
		wg.Go(func() {
			b, err := get()
			if err == nil {
				err = os.WriteFile(filepath.Join(cfg.ProfileDir, name), b, 0o644)
			}
			if err != nil {
				logf("CPU profile of the %s: %v", what, err)
				return
			}
			logf("CPU profile of the %s over the first %d s in %s (go tool pprof -top %s)", what, cfg.CPUProfileSeconds, name, name)
		})
	}
	for _, pr := range procs {
		addr, err := bindAddress("/proc", pr.p.Pid(), "pprof-bind-address")
		if err != nil {
			return nil, err
		}
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, cfg.CPUProfileSeconds)
		record(pr.name, fmt.Sprintf("cpu-%s-%s-%d.pb.gz", pr.name, cfg.Profile.Name, cfg.N), func() ([]byte, error) { return get(ctx, url) })
	}
	// kube-apiserver serves its profile to the admin (--profiling is on
	// by default).
	record("kube-apiserver", fmt.Sprintf("cpu-kube-apiserver-%s-%d.pb.gz", cfg.Profile.Name, cfg.N), func() ([]byte, error) {
		return env.Clientset.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
			Param("seconds", strconv.Itoa(cfg.CPUProfileSeconds)).DoRaw(ctx)
	})
	return names, nil
}

// fetch saves what url answers to path.
func fetch(ctx context.Context, url, path string) error {
	b, err := get(ctx, url)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// get returns what url answers.
func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// benchDataPlaneCIDR and benchManagementCIDR are the environment's
// data-plane and management subnets in the bench (their default /24s are
// too small for 1000 pods).
const benchDataPlaneCIDR, benchManagementCIDR = "10.30.0.0/16", "10.20.0.0/16"

// createBenchNADs creates NADs in ns for the environment's management
// network (benchManagementCIDR) and data-plane network
// (benchDataPlaneCIDR), configured as the environment's CreateNADs does.
// With pooled, the DPDK network names the pools' security group, so that
// its ports come from the pools; the management network names none, so
// that it gets the default groups its declared pool (aio
// Options.PodPools) has.
func createBenchNADs(ctx context.Context, env *aio.Env, ns string, pooled bool) error {
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	if err := env.WaitServiceAccount(ctx, ns, "default"); err != nil {
		return err
	}
	groups := ""
	if pooled {
		groups = fmt.Sprintf(`,"securityGroups":[%q]`, env.PoolSecurityGroup())
	}
	nads := map[string]string{
		"bench-mgmt": fmt.Sprintf(`{"cniVersion":"1.1.0","name":"bench-mgmt","type":"kuryr-cni","driver":%q,"subnetId":%q}`,
			env.MgmtDriver, env.Networks.Management.ID),
		"bench-dpdk": fmt.Sprintf(`{"cniVersion":"1.1.0","name":"bench-dpdk","type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q,"dpdkDriver":"uio_pci_generic"%s}`,
			env.Networks.DataPlane.ID, groups),
	}
	for name, conf := range nads {
		nad := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: conf}}
		if err := env.Client.Create(ctx, nad); err != nil {
			return fmt.Errorf("create NetworkAttachmentDefinition %s/%s: %w", ns, name, err)
		}
	}
	return nil
}

// aioBenchPod asks for eth0, the management network and a DPDK interface,
// with small requests so that 20+ pods fit a simulated node.
func aioBenchPod(ns, name string) *corev1.Pod {
	res := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi"),
		corev1.ResourceName("hugepages-2Mi"): resource.MustParse("32Mi"),
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "kuryr-bench"},
			Annotations: map[string]string{v1alpha1.NetworksAnnotation: "bench-mgmt,bench-dpdk@dpdk0"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/dpdk-app:1",
			Resources: corev1.ResourceRequirements{Requests: res, Limits: res},
		}}},
	}
}

func createPods(ctx context.Context, env *aio.Env, ns string, pods []PodTimes, parallel int) error {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range pods {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			name := fmt.Sprintf("bench-%04d", i)
			pods[i].Name, pods[i].Created = name, time.Now()
			out, err := env.CreatePod(ctx, aioBenchPod(ns, name))
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			pods[i].UID = out.UID
		}()
	}
	wg.Wait()
	return firstErr
}

func watchClient(kubeconfig string) (client.WithWatch, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return client.NewWithWatch(cfg, client.Options{Scheme: aio.Scheme})
}

// kpTracker records when each KuryrPod and each of its interfaces was
// first seen, from a watch (restarted when the server ends it).
type kpTracker struct {
	mu     sync.Mutex
	first  map[string]time.Time
	active map[string]map[string]time.Time
}

func newKPTracker() *kpTracker {
	return &kpTracker{first: map[string]time.Time{}, active: map[string]map[string]time.Time{}}
}

func (t *kpTracker) run(ctx context.Context, c client.WithWatch, ns string) {
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, &v1alpha1.KuryrPodList{}, client.InNamespace(ns))
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			kp, ok := ev.Object.(*v1alpha1.KuryrPod)
			if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
				continue
			}
			t.observe(kp, time.Now())
		}
		w.Stop()
	}
}

func (t *kpTracker) observe(kp *v1alpha1.KuryrPod, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.first[kp.Name]; !ok {
		t.first[kp.Name] = now
		t.active[kp.Name] = map[string]time.Time{}
	}
	for _, s := range kp.Status.Interfaces {
		if s.State != v1alpha1.StateActive && s.State != v1alpha1.StatePlugged {
			continue
		}
		if _, ok := t.active[kp.Name][s.IfName]; !ok {
			t.active[kp.Name][s.IfName] = now
		}
	}
}

func (t *kpTracker) get(name string) (time.Time, map[string]time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := map[string]time.Time{}
	for k, v := range t.active[name] {
		a[k] = v
	}
	return t.first[name], a
}

// freeLoopback returns a free 127.0.0.1 port as host:port.
func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// metricsURL finds a process's --metrics-bind-address in its command line.
func metricsURL(procRoot string, pid int) (string, error) {
	addr, err := bindAddress(procRoot, pid, "metrics-bind-address")
	if err != nil {
		return "", err
	}
	return "http://" + addr + "/metrics", nil
}

// bindAddress finds a process's --<flag>=ADDRESS in its command line (not
// "0", which turns the server off).
func bindAddress(procRoot string, pid int, flag string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/cmdline", procRoot, pid))
	if err != nil {
		return "", fmt.Errorf("command line of pid %d: %w", pid, err)
	}
	for _, a := range strings.Split(string(b), "\x00") {
		if addr, ok := strings.CutPrefix(a, "--"+flag+"="); ok && addr != "0" {
			return addr, nil
		}
	}
	return "", fmt.Errorf("pid %d has no --%s", pid, flag)
}

// AutoDPDKPool sizes each node's DPDK pool for N pods over nodes: the pods
// a node gets if the scheduler spreads them evenly, plus a quarter and one
// for an uneven spread, within the simulated node's hot-plug slots (min =
// max = batch: one batch fills it).
func AutoDPDKPool(n, nodes int) aio.PoolSize {
	perNode := (n + nodes - 1) / nodes
	size := min(perNode+(perNode+3)/4+1, aio.NodePCISlots)
	return aio.PoolSize{Min: size, Max: size, Batch: size}
}
