// Command bench-neutron measures kuryr-controller alone against a real
// neutron-server (on MariaDB, started by hack/neutron/start-mariadb.sh) on
// the nested-vlan path: a real kube-apiserver, the controller binary as a
// subprocess, a Node whose InternalIP is a trunk parent port's IP, and an
// agent stand-in that sets trunk subports ACTIVE in the database every
// 0.2 s. For each N it creates N pods at once and reports the time to a
// Ready KuryrPod (p50/p90/max, wall), Neutron requests per pod (from the
// server's log and the controller's metrics) and the controller's RSS.
//
// With --kuryr-venv and --kuryr-src it then runs kuryr-kubernetes' controller
// (the retired Python project) on the same environment, without and with its
// nested VIF pool, one controller at a time, and prints one table comparing
// them with ratio columns (hack/bench/peer.sh, make bench-peer).
//
// hack/bench/neutron.sh (make bench-neutron) sets everything up and runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/freeport"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/bench"
)

type config struct {
	neutronURL   string
	neutronState string
	controller   string
	counts       string
	out          string
	crds         string
	projectID    string
	clusterID    string
	timeout      time.Duration
	agentPeriod  time.Duration
	parallel     int
	extraArgs    string
	// Comparison with kuryr-kubernetes (on when kuryrVenv is set).
	kuryrVenv, kuryrSrc string
	oursPooledArgs      string
	poolWarm            time.Duration
	kuryrPoolMin        int
	kuryrPoolBatch      int
	kuryrPoolMax        int
	kuryrPoolUpdate     int
}

func main() { os.Exit(run()) }

func run() int {
	var c config
	flag.StringVar(&c.neutronURL, "neutron-url", "", "Neutron endpoint (required)")
	flag.StringVar(&c.neutronState, "neutron-state", "", "state dir of hack/neutron/start-mariadb.sh: log, pid files, mysql.sock (required)")
	flag.StringVar(&c.controller, "controller", "bin/kuryr-controller", "kuryr-controller binary")
	flag.StringVar(&c.counts, "counts", "1,10,50", "comma-separated pod counts, one round each")
	flag.StringVar(&c.out, "out", "", "results directory (default results/<UTC timestamp>)")
	flag.StringVar(&c.crds, "crds", "deploy/crds,deploy/third-party", "CRD directories")
	flag.StringVar(&c.projectID, "project-id", "kuryr-bench", "Neutron project of everything created")
	flag.StringVar(&c.clusterID, "cluster-id", "bench", "controller's --cluster-id")
	flag.DurationVar(&c.timeout, "round-timeout", 5*time.Minute, "bound on one round")
	flag.DurationVar(&c.agentPeriod, "agent-period", 200*time.Millisecond, "period of the L2 agent stand-in")
	flag.IntVar(&c.parallel, "parallel", 50, "pods created at once")
	flag.StringVar(&c.extraArgs, "controller-args", "", "extra controller flags, space-separated")
	flag.StringVar(&c.kuryrVenv, "kuryr-venv", "", "also run kuryr-kubernetes from this venv (hack/bench/peer-venv.sh), unpooled and pooled, after ours, and print a comparison table")
	flag.StringVar(&c.kuryrSrc, "kuryr-src", "", "kuryr-kubernetes checkout: its CRDs (kubernetes_crds/kuryr_crds) are installed; required with --kuryr-venv")
	flag.StringVar(&c.oursPooledArgs, "ours-pooled-args", "", "extra kuryr-controller flags that turn our pools on: our controller runs again with them after its unpooled run; empty: no pooled run (reported as not measured beside kuryr-kubernetes)")
	flag.DurationVar(&c.poolWarm, "pool-warm-timeout", 5*time.Minute, "with --ours-pooled-args: how long a round waits for our pools to be warm before it goes on anyway")
	flag.IntVar(&c.kuryrPoolMin, "kuryr-pool-min", 10, "kuryr-kubernetes [vif_pool] ports_pool_min")
	flag.IntVar(&c.kuryrPoolBatch, "kuryr-pool-batch", 50, "kuryr-kubernetes [vif_pool] ports_pool_batch")
	flag.IntVar(&c.kuryrPoolMax, "kuryr-pool-max", 0, "kuryr-kubernetes [vif_pool] ports_pool_max (0: no limit)")
	flag.IntVar(&c.kuryrPoolUpdate, "kuryr-pool-update", 2, "kuryr-kubernetes [vif_pool] ports_pool_update_frequency, seconds")
	render := flag.String("render", "", "only redraw DIR/latency.svg from DIR/results.json of an earlier run")
	flag.Parse()
	if *render != "" {
		if err := redraw(*render); err != nil {
			fmt.Fprintln(os.Stderr, "bench-neutron:", err)
			return 1
		}
		return 0
	}
	if c.neutronURL == "" || c.neutronState == "" {
		fmt.Fprintln(os.Stderr, "bench-neutron: --neutron-url and --neutron-state are required")
		return 2
	}
	if (c.kuryrVenv == "") != (c.kuryrSrc == "") {
		fmt.Fprintln(os.Stderr, "bench-neutron: --kuryr-venv and --kuryr-src go together")
		return 2
	}
	if c.out == "" {
		c.out = filepath.Join("results", time.Now().UTC().Format("20060102T150405Z")+"-neutron")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench1(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "bench-neutron:", err)
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-neutron %s: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func bench1(ctx context.Context, c config) (err error) {
	var counts []int
	for _, s := range strings.Split(c.counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("--counts: %q is not a positive number", s)
		}
		counts = append(counts, n)
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	neutronPID, err := readPID(filepath.Join(c.neutronState, "neutron-server.pid"))
	if err != nil {
		return fmt.Errorf("neutron-server pid: %w", err)
	}
	mariadbPID, err := readPID(filepath.Join(c.neutronState, "mariadb.pgid"))
	if err != nil {
		return fmt.Errorf("mariadb pid: %w", err)
	}

	// 1. The cloud as an operator has it.
	neutron := &bench.Neutron{URL: c.neutronURL, ProjectID: c.projectID}
	t0 := time.Now()
	topo, err := neutron.Setup(ctx, "bench", "10.20.0.0/24", "10.30.0.0/20", "4e1d7b4c-0000-4000-8000-00000000be01", "bench-hypervisor-1")
	if err != nil {
		return err
	}
	logf("neutron: worker subnet %s, pod subnet %s, node port %s (%s), trunk %s, bound to %s (%s)",
		topo.WorkerSubnetID, topo.PodSubnetID, topo.ParentPortID, topo.ParentIP, topo.TrunkID, topo.HostID, time.Since(t0).Round(time.Millisecond))

	// 2. A real kube-apiserver with our CRDs.
	var crdDirs []string
	for _, d := range strings.Split(c.crds, ",") {
		crdDirs = append(crdDirs, strings.TrimSpace(d))
	}
	if c.kuryrSrc != "" {
		crdDirs = append(crdDirs, filepath.Join(c.kuryrSrc, "kubernetes_crds", "kuryr_crds"))
	}
	t0 = time.Now()
	kube, err := testenv.Start(testenv.Options{CRDDirectoryPaths: crdDirs})
	if err != nil {
		return err
	}
	defer func() {
		if serr := kube.Stop(); serr != nil {
			logf("stopping kube-apiserver: %v", serr)
		}
	}()
	logf("kube-apiserver at %s (%s)", kube.Config.Host, time.Since(t0).Round(time.Millisecond))
	tmp, err := os.MkdirTemp("", "kuryr-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	if err := bench.WriteKubeconfig(kube.Config, kubeconfig); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, nadv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	cfg := *kube.Config
	cfg.QPS, cfg.Burst = 1000, 2000
	cl, err := client.NewWithWatch(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}

	// 3. The node.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bench-node-1"}}
	if err := cl.Create(ctx, node); err != nil {
		return fmt.Errorf("create node: %w", err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: topo.ParentIP}, {Type: corev1.NodeHostName, Address: node.Name}}
	if err := cl.Status().Update(ctx, node); err != nil {
		return fmt.Errorf("set node addresses: %w", err)
	}

	// 4. The agent stand-in.
	agentCtx, stopAgent := context.WithCancel(ctx)
	agent := &bench.Agent{Socket: filepath.Join(c.neutronState, "mysql.sock"), Database: "neutron", Period: c.agentPeriod}
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(agentCtx) }()
	defer func() {
		stopAgent()
		if aerr := <-agentDone; aerr != nil && err == nil {
			err = aerr
		}
	}()
	agentHealth := func() error {
		select {
		case err := <-agentDone:
			agentDone <- err // for the deferred stop
			return fmt.Errorf("agent stand-in stopped: %v", err)
		default:
			return nil
		}
	}

	// 5. The controllers, one after the other, each alone on the cloud.
	h := &harness{c: c, counts: counts, kube: kube.Config, kubeconfig: kubeconfig, topo: topo, neutron: neutron,
		env: bench.Env{
			Client: cl, Node: node.Name, NodeIP: topo.ParentIP,
			NeutronLog: filepath.Join(c.neutronState, "neutron-server.log"),
			ProcRoot:   "/proc",
			Groups:     map[string]int{"neutron-server": neutronPID, "mariadb": mariadbPID},
			Timeout:    c.timeout, Parallel: c.parallel, Log: logf,
		},
		agentHealth: agentHealth,
	}
	ours, err := h.ours(ctx, "kuryr-dpdk", c.extraArgs, false)
	if err != nil {
		return err
	}
	runs := []bench.Run{ours}
	oursPooled := bench.Run{Name: "kuryr-dpdk, pooled", NotMeasured: "not run: set --ours-pooled-args"}
	if c.oursPooledArgs != "" {
		if oursPooled, err = h.ours(ctx, "kuryr-dpdk, pooled", c.extraArgs+" "+c.oursPooledArgs, true); err != nil {
			return err
		}
		// Its pool stays in Neutron on purpose; the next controller must
		// not find it (kuryr-kubernetes would adopt compute:kuryr subports
		// into its own pool, and its release check counts them).
		n, err := dropUntilQuiet(ctx, neutron, topo.TrunkID, url.Values{"tags": {"kuryr-cluster=" + c.clusterID}})
		if err != nil {
			return fmt.Errorf("remove the ports our pooled run left: %w", err)
		}
		logf("%s: removed the %d ports it left (its pool)", oursPooled.Name, n)
		if c.kuryrVenv == "" {
			runs[0].Name = "kuryr-dpdk, unpooled"
			runs = append(runs, oursPooled)
		}
	}
	if c.kuryrVenv != "" {
		// A failed peer run keeps the rounds it finished, and the next runs.
		kuryr, err := h.kuryr(ctx, nil)
		if err != nil {
			logf("%s: %v", kuryr.Name, err)
			kuryr.Error = err.Error()
		}
		pool := &bench.KuryrPool{Min: c.kuryrPoolMin, Batch: c.kuryrPoolBatch, Max: c.kuryrPoolMax, UpdateFrequency: c.kuryrPoolUpdate}
		kuryrPooled, err := h.kuryr(ctx, pool)
		if err != nil {
			logf("%s: %v", kuryrPooled.Name, err)
			kuryrPooled.Error = err.Error()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		runs[0].Name = "kuryr-dpdk, unpooled"
		runs = append(runs, kuryr, oursPooled, kuryrPooled)
	}
	activated, passes, deadlocks := agent.Activated()
	// A multi-table UPDATE counts a row in ports and one in standardattributes per port.
	logf("agent stand-in: %d ports set ACTIVE in %d passes (%d deadlocks retried)", activated/2, passes, deadlocks)
	return writeResults(c, runs, topo)
}

// harness is the environment the controllers take turns on.
type harness struct {
	c           config
	counts      []int
	kube        *rest.Config
	kubeconfig  string
	topo        bench.Topology
	neutron     *bench.Neutron
	env         bench.Env
	agentHealth func() error
	// sgID is the pods' security group, made once and given to every
	// controller (our pools serve only interfaces that name theirs).
	sgID string
}

// podSecurityGroup returns the pods' security group, made on first use.
func (h *harness) podSecurityGroup(ctx context.Context) (string, error) {
	if h.sgID == "" {
		var err error
		if h.sgID, err = h.neutron.SecurityGroup(ctx, "bench-pods"); err != nil {
			return "", err
		}
	}
	return h.sgID, nil
}

// ours runs the rounds against kuryr-controller started with the
// harness's flags and extra (space-separated); pooled says extra turns its
// pools on.
func (h *harness) ours(ctx context.Context, name, extra string, pooled bool) (bench.Run, error) {
	run := bench.Run{Name: name}
	sg, err := h.podSecurityGroup(ctx)
	if err != nil {
		return run, err
	}
	ports, err := freeport.Pick(2)
	if err != nil {
		return run, err
	}
	metricsPort, probePort := ports[0], ports[1]
	args := []string{
		"--kubeconfig", h.kubeconfig, "--neutron-url", h.c.neutronURL, "--project-id", h.c.projectID,
		"--primary", "--default-driver", "nested-vlan", "--pod-subnet-id", h.topo.PodSubnetID,
		"--worker-subnet-ids", h.topo.WorkerSubnetID, "--cluster-id", h.c.clusterID, "--leader-elect=false",
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort), "--metrics-secure=false",
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", probePort),
		// Keep the garbage collector's periodic port listing out of the
		// measured windows (it runs once at start).
		"--gc-period", "1h",
		"--pod-security-groups", sg,
	}
	args = append(args, strings.Fields(extra)...)
	run.Config = "kuryr-controller " + strings.Join(args[2:], " ")
	bin, err := filepath.Abs(h.c.controller)
	if err != nil {
		return run, err
	}
	logPath := filepath.Join(h.c.out, slug(name)+".log")
	if name == "kuryr-dpdk" {
		logPath = filepath.Join(h.c.out, "controller.log")
	}
	proc, err := bench.StartProcess(bin, args, nil, logPath)
	if err != nil {
		return run, err
	}
	defer proc.Stop(10 * time.Second)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := proc.WaitHTTP(wctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort)); err != nil {
		return run, err
	}
	logf("%s: kuryr-controller pid %d ready: %s", name, proc.PID(), strings.Join(args[2:], " "))
	env := h.env
	env.Subject = bench.OursSubject(h.neutron, h.c.clusterID)
	if pooled {
		env.Subject = bench.OursPooledSubject(h.neutron, h.c.clusterID, h.env.Client, h.env.Node, h.c.poolWarm, logf)
	}
	env.MetricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	run.Results, err = h.rounds(ctx, env, proc, logPath, "bench", 0)
	return run, err
}

// kuryr runs the rounds against kuryr-kubernetes' controller, with its
// nested VIF pool when pool is set.
func (h *harness) kuryr(ctx context.Context, pool *bench.KuryrPool) (bench.Run, error) {
	name, prefix := "kuryr-kubernetes, unpooled", "kuryr"
	var settle time.Duration
	if pool != nil {
		name, prefix = "kuryr-kubernetes, pooled", "kuryrpool"
		// Released ports go back to its pool in a periodic task: let it
		// run before the next round.
		settle = time.Duration(2*pool.UpdateFrequency+1) * time.Second
	}
	run := bench.Run{Name: name}
	sg, err := h.podSecurityGroup(ctx)
	if err != nil {
		return run, err
	}
	ports, err := freeport.Pick(2)
	if err != nil {
		return run, err
	}
	healthPort, exporterPort := ports[0], ports[1]
	k := &bench.Kuryr{
		Venv: h.c.kuryrVenv, NeutronURL: h.c.neutronURL, ProjectID: h.c.projectID,
		PodSubnetID: h.topo.PodSubnetID, WorkerSubnetID: h.topo.WorkerSubnetID, SecurityGroupID: sg,
		HealthPort: healthPort, ExporterPort: exporterPort, Pool: pool,
	}
	run.Config = fmt.Sprintf("kuryr-k8s-controller (%s), nested-vlan, handlers vif,kuryrport, %s", h.c.kuryrVenv, pool)
	logPath := filepath.Join(h.c.out, prefix+".log")
	proc, err := k.Start(h.kube, filepath.Join(h.c.out, prefix+"-conf"), logPath)
	if err != nil {
		return run, err
	}
	defer proc.Stop(10 * time.Second)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := proc.WaitHTTP(wctx, fmt.Sprintf("http://127.0.0.1:%d/ready", healthPort)); err != nil {
		return run, err
	}
	logf("%s: kuryr-k8s-controller pid %d ready (%s)", name, proc.PID(), pool)
	env := h.env
	env.Subject = bench.KuryrSubject(h.neutron, pool != nil)
	run.Results, err = h.rounds(ctx, env, proc, logPath, prefix, settle)
	return run, err
}

// rounds runs a first pod with cold caches, then one round per count,
// against the controller proc (its log at logPath), in namespaces named
// prefix-…; settle is a pause before each round after the first.
func (h *harness) rounds(ctx context.Context, env bench.Env, proc *bench.Process, logPath, prefix string, settle time.Duration) ([]bench.Result, error) {
	env.ControllerPGID = proc.PID()
	env.Groups = maps.Clone(env.Groups)
	env.Groups["controller"] = proc.PID()
	env.Health = func() error {
		if done, err := proc.Exited(); done {
			return fmt.Errorf("the controller exited (%v); see %s", err, logPath)
		}
		return h.agentHealth()
	}
	type round struct {
		name, ns string
		n        int
	}
	plan := []round{{"first pod (cold)", prefix + "-cold", 1}}
	for _, n := range h.counts {
		plan = append(plan, round{fmt.Sprintf("N=%d", n), fmt.Sprintf("%s-n%d", prefix, n), n})
	}
	var results []bench.Result
	for i, r := range plan {
		if i > 0 && settle > 0 {
			select {
			case <-ctx.Done():
				return results, ctx.Err()
			case <-time.After(settle):
			}
		}
		if i > 0 && env.Subject.Warm != nil {
			if err := env.Subject.Warm(ctx); err != nil {
				return results, err
			}
		}
		res, err := env.Run(ctx, r.name, r.ns, r.n)
		if err != nil {
			return results, err
		}
		results = append(results, res)
	}
	return results, nil
}

// slug turns a run's name into a file name part.
func slug(name string) string {
	return strings.NewReplacer(", ", "-", " ", "-").Replace(name)
}

func writeResults(c config, runs []bench.Run, topo bench.Topology) error {
	machine := bench.ReadMachine("/proc")
	workers := "?"
	if b, err := os.ReadFile(filepath.Join(c.neutronState, "neutron.conf")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "api_workers = "); ok {
				workers = v
			}
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# bench-neutron %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&md, "- machine: %s\n", machine)
	fmt.Fprintf(&md, "- neutron-server (Debian, MariaDB, %s API workers) at %s; agent stand-in every %s\n", workers, c.neutronURL, c.agentPeriod)
	for _, run := range runs {
		if run.NotMeasured == "" {
			fmt.Fprintf(&md, "- %s: %s\n", run.Name, run.Config)
		}
	}
	if len(runs) > 1 {
		md.WriteString("\nThe controllers one after the other on the same kube-apiserver, Neutron and agent stand-in;" +
			" latency is pod create → all interfaces active (KuryrPod Ready; KuryrPort vifs active); peak RSS summed over the controller's processes:\n\n")
		if err := bench.WritePeerTable(&md, runs); err != nil {
			return err
		}
	}
	for i, run := range runs {
		if run.NotMeasured != "" {
			continue
		}
		if len(runs) > 1 {
			fmt.Fprintf(&md, "\n## %s\n\n", run.Name)
		}
		if err := bench.WriteMarkdown(&md, run.Results); err != nil {
			return err
		}
		name := slug(run.Name)
		if i == 0 {
			name = ""
		}
		if err := writeRunFiles(c.out, name, run); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(c.out, "results.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	if len(runs) > 1 {
		if err := writePeerChart(c.out, runs); err != nil {
			return err
		}
	}
	raw, err := json.MarshalIndent(struct {
		Machine  bench.Machine
		Topology bench.Topology
		// Results are the first run's (ours), as -render reads them.
		Results []bench.Result
		Runs    []bench.Run `json:",omitempty"`
	}{machine, topo, runs[0].Results, runs[1:]}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.out, "results.json"), raw, 0o644); err != nil {
		return err
	}
	fmt.Print(md.String())
	logf("results in %s (results.md, latency*.svg, results.json, controller logs)", c.out)
	return nil
}

// writeRunFiles writes a run's request timelines and latency chart, their
// names suffixed with -name unless name is empty.
func writeRunFiles(dir, name string, run bench.Run) error {
	suffix := ""
	if name != "" {
		suffix = "-" + name
	}
	for i, r := range run.Results {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("neutron-requests%s-%d-n%d.tsv", suffix, i, r.N)))
		if err != nil {
			return err
		}
		if err := errors.Join(bench.WriteTimeline(f, r.Start, r.Requests), f.Close()); err != nil {
			return err
		}
	}
	svg, err := os.Create(filepath.Join(dir, "latency"+suffix+".svg"))
	if err != nil {
		return err
	}
	title := chartTitle
	if name != "" {
		title = run.Name + ", nested-vlan, real Neutron on MariaDB"
	}
	return errors.Join(bench.WriteSVG(svg, title, run.Results), svg.Close())
}

const chartTitle = "kuryr-controller, nested-vlan, real Neutron on MariaDB"

// writePeerChart draws the runs side by side into dir/peer.svg.
func writePeerChart(dir string, runs []bench.Run) error {
	svg, err := os.Create(filepath.Join(dir, "peer.svg"))
	if err != nil {
		return err
	}
	return errors.Join(bench.WritePeerSVG(svg, "wall per round, nested-vlan, real Neutron on MariaDB", runs), svg.Close())
}

// redraw rewrites dir/latency.svg from dir/results.json.
func redraw(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	var saved struct{ Results []bench.Result }
	if err := json.Unmarshal(b, &saved); err != nil {
		return fmt.Errorf("%s/results.json: %w", dir, err)
	}
	svg, err := os.Create(filepath.Join(dir, "latency.svg"))
	if err != nil {
		return err
	}
	return errors.Join(bench.WriteSVG(svg, chartTitle, saved.Results), svg.Close())
}

// dropUntilQuiet removes the ports matching q until none has matched for
// 15 s, and returns how many it removed. One listing is not enough: a
// stopped controller's bulk create still in flight (its context was
// cancelled, Neutron goes on) lands after it (seen: 50 pool ports made
// after the first drop, which failed the next controller's release check).
func dropUntilQuiet(ctx context.Context, neutron *bench.Neutron, trunkID string, q url.Values) (int, error) {
	total, quietSince := 0, time.Now()
	for time.Since(quietSince) < 15*time.Second {
		n, err := neutron.DropPorts(ctx, trunkID, q)
		if err != nil {
			return total, err
		}
		if n > 0 {
			total, quietSince = total+n, time.Now()
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return total, nil
}
