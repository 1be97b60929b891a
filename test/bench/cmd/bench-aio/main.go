// Command bench-aio measures how fast pods get their networks on the
// all-in-one environment (test/aio): for each cloud profile and size it
// starts a fresh environment (with --dpdk-pool, warm pools on every node:
// for every interface, or with --pools dpdk for the DPDK one), creates N pods at once (eth0 + a management network + a DPDK
// interface each), waits until every pod's CNI ADD returned, and reports
// per-pod intervals, the daemons' ADD phases, OpenStack calls per pod,
// peak RSS and issue 14's targets beside them; zero-profile runs record
// CPU profiles of the controller and one daemon. Every environment is
// closed (all it made removed) before the next run starts.
//
// hack/bench/aio.sh (make bench) builds what it needs and runs it as root.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/bench"
)

func main() { os.Exit(run()) }

func run() int {
	sizes := flag.String("sizes", "1,10,100", "comma-separated pod counts; each N:NODES (default nodes: 1→1, 10→2, 100→10, 1000→50)")
	profiles := flag.String("profiles", "zero,realistic", "comma-separated cloud profiles: zero, realistic")
	out := flag.String("out", "", "results directory (default results/<UTC timestamp>-aio)")
	binDir := flag.String("bin-dir", "bin", "kuryr-controller, kuryr-daemon, kuryr-cni")
	timeout := flag.Duration("run-timeout", 10*time.Minute, "bound on the wait for one run's pods")
	parallel := flag.Int("parallel", 50, "pod create calls in flight")
	render := flag.String("render", "", "only rewrite DIR/results.md and the charts from DIR/results.json of an earlier run")
	pool := flag.String("dpdk-pool", "", "warm DPDK pools on every node before the pods are made: auto (sized for the pods per node), or MIN,MAX[,BATCH]; empty: none")
	pooled := flag.String("pools", "all", "with --dpdk-pool, the interfaces whose pools are warm: all (eth0, the management network and dpdk0, pools of the same size) or dpdk (dpdk0 only)")
	cpuSeconds := flag.Int("cpu-profile-seconds", 30, "CPU profiles of the controller and node-1's daemon over this many seconds from the first pod create, in zero-profile runs (0: none)")
	pprof := flag.Bool("pprof", true, "profile the runs (heap and CPU profiles, --cpu-profile-seconds); false: the processes serve no profiles, and their RSS is theirs alone (a profile's fetch counts in the controller's)")
	flag.Parse()
	if *render != "" {
		if err := redraw(*render); err != nil {
			fmt.Fprintln(os.Stderr, "bench-aio:", err)
			return 1
		}
		return 0
	}
	if *out == "" {
		*out = filepath.Join("results", time.Now().UTC().Format("20060102T150405Z")+"-aio")
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "bench-aio %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		logf("%v", err)
		return 1
	}
	bin, err := filepath.Abs(*binDir)
	if err != nil {
		logf("%v", err)
		return 1
	}
	poolOf, err := parsePool(*pool)
	if err != nil {
		logf("%v", err)
		return 2
	}
	if *pooled != "all" && *pooled != "dpdk" {
		logf("--pools %q: want all or dpdk", *pooled)
		return 2
	}
	if *cpuSeconds < 0 {
		logf("--cpu-profile-seconds %d must not be negative", *cpuSeconds)
		return 2
	}
	type runSpec struct {
		prof     bench.Profile
		n, nodes int
	}
	var runs []runSpec
	for _, pn := range strings.Split(*profiles, ",") {
		p, ok := bench.Profiles[strings.TrimSpace(pn)]
		if !ok {
			logf("unknown profile %q (zero, realistic)", pn)
			return 2
		}
		for _, s := range strings.Split(*sizes, ",") {
			n, nodes, err := parseSize(strings.TrimSpace(s))
			if err != nil {
				logf("%v", err)
				return 2
			}
			runs = append(runs, runSpec{p, n, nodes})
		}
	}
	profileDir := *out
	if !*pprof {
		profileDir = ""
	}
	var results []bench.AIOResult
	code := 0
	for i, r := range runs {
		logf("run %d/%d: profile %s, N=%d over %d nodes", i+1, len(runs), r.prof.Name, r.n, r.nodes)
		cpu := 0
		if r.prof.Name == "zero" {
			cpu = *cpuSeconds
		}
		// KURYR_BENCH_POOLS=all (the default) pools the pods' other
		// interfaces only when there are pools at all.
		dpdkPool := poolOf(r.n, r.nodes)
		res, err := bench.RunAIO(ctx, bench.AIOConfig{N: r.n, Nodes: r.nodes, Profile: r.prof, BinDir: bin,
			DPDKPool: dpdkPool, PodPools: *pooled == "all" && dpdkPool.Max > 0, CPUProfileSeconds: cpu,
			Timeout: *timeout, Parallel: *parallel, ProfileDir: profileDir, Log: logf})
		if err != nil {
			logf("run %s: %v", res.RunName(), err)
			code = 1
			if ctx.Err() != nil {
				break
			}
			continue
		}
		logf("run %s: %d/%d ready, wall %s, %.2f pods/s", res.RunName(), res.Ready, res.N, res.Wall.Round(time.Millisecond), res.PodsPerSecond())
		results = append(results, res)
		if err := write(*out, results); err != nil {
			logf("%v", err)
			return 1
		}
	}
	if len(results) > 0 {
		_ = bench.WriteAIOMarkdown(os.Stdout, results)
	}
	logf("results in %s", *out)
	return code
}

// parsePool reads --dpdk-pool: "" (no pools), "auto" (bench.AutoDPDKPool
// for each run's size) or "MIN,MAX[,BATCH]" (BATCH defaults to MAX).
func parsePool(s string) (func(n, nodes int) aio.PoolSize, error) {
	switch s = strings.TrimSpace(s); s {
	case "":
		return func(int, int) aio.PoolSize { return aio.PoolSize{} }, nil
	case "auto":
		return bench.AutoDPDKPool, nil
	}
	bad := fmt.Errorf("--dpdk-pool %q: want auto or MIN,MAX[,BATCH] with 0 <= MIN <= MAX, 1 <= MAX <= %d, 1 <= BATCH <= MAX", s, aio.NodePCISlots)
	fields := strings.Split(s, ",")
	if len(fields) < 2 || len(fields) > 3 {
		return nil, bad
	}
	var v [3]int
	for i, f := range fields {
		x, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, bad
		}
		v[i] = x
	}
	p := aio.PoolSize{Min: v[0], Max: v[1], Batch: v[2]}
	if len(fields) == 2 {
		p.Batch = p.Max
	}
	if p.Min < 0 || p.Min > p.Max || p.Max < 1 || p.Max > aio.NodePCISlots || p.Batch < 1 || p.Batch > p.Max {
		return nil, bad
	}
	return func(int, int) aio.PoolSize { return p }, nil
}

// parseSize reads "N" or "N:NODES".
func parseSize(s string) (n, nodes int, err error) {
	ns, nodesS, hasNodes := strings.Cut(s, ":")
	if n, err = strconv.Atoi(ns); err != nil || n < 1 {
		return 0, 0, fmt.Errorf("size %q: want N or N:NODES", s)
	}
	switch {
	case hasNodes:
		if nodes, err = strconv.Atoi(nodesS); err != nil || nodes < 1 {
			return 0, 0, fmt.Errorf("size %q: want N or N:NODES", s)
		}
	case n >= 1000:
		nodes = 50
	default:
		nodes = max(1, min(50, n/10))
		if n > 1 && nodes < 2 {
			nodes = 2
		}
	}
	return n, nodes, nil
}

// write rewrites the table, the charts and the raw results after each run.
func write(dir string, results []bench.AIOResult) error {
	f, err := os.Create(filepath.Join(dir, "results.md"))
	if err != nil {
		return err
	}
	if err := bench.WriteAIOMarkdown(f, results); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, r := range results {
		name := fmt.Sprintf("aio-%s-n%d.svg", r.Profile, r.N)
		g, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := bench.WriteAIOSVG(g, r); err != nil {
			_ = g.Close()
			return err
		}
		if err := g.Close(); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644)
}

func redraw(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	var results []bench.AIOResult
	if err := json.Unmarshal(b, &results); err != nil {
		return fmt.Errorf("%s/results.json: %w", dir, err)
	}
	return write(dir, results)
}
