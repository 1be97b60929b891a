// Command bench-neutron measures kuryr-controller alone against a real
// neutron-server (on MariaDB, started by hack/neutron/start-mariadb.sh) on
// the nested-vlan path: a real kube-apiserver, the controller binary as a
// subprocess, a Node whose InternalIP is a trunk parent port's IP, and an
// agent stand-in that sets trunk subports ACTIVE in the database every
// 0.2 s. For each N it creates N pods at once and reports the time to a
// Ready KuryrPod (p50/p90/max, wall), Neutron requests per pod (from the
// server's log and the controller's metrics) and the controller's RSS.
//
// hack/bench/neutron.sh (make bench-neutron) sets everything up and runs it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
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
	controllerBin, err := filepath.Abs(c.controller)
	if err != nil {
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

	// 5. The controller.
	metricsPort, err := bench.FreePort()
	if err != nil {
		return err
	}
	probePort, err := bench.FreePort()
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig", kubeconfig, "--neutron-url", c.neutronURL, "--project-id", c.projectID,
		"--primary", "--default-driver", "nested-vlan", "--pod-subnet-id", topo.PodSubnetID,
		"--worker-subnet-ids", topo.WorkerSubnetID, "--cluster-id", c.clusterID, "--leader-elect=false",
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", probePort),
		// Keep the garbage collector's periodic port listing out of the
		// measured windows (it runs once at start).
		"--gc-period", "1h",
	}
	args = append(args, strings.Fields(c.extraArgs)...)
	ctrlProc, err := bench.StartProcess(controllerBin, args, filepath.Join(c.out, "controller.log"))
	if err != nil {
		return err
	}
	defer ctrlProc.Stop(10 * time.Second)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := ctrlProc.WaitHTTP(wctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort)); err != nil {
		return err
	}
	logf("kuryr-controller pid %d ready: %s", ctrlProc.PID(), strings.Join(args[2:], " "))

	env := &bench.Env{
		Client: cl, Node: node.Name, NodeIP: topo.ParentIP, Neutron: neutron, ClusterID: c.clusterID,
		NeutronLog: filepath.Join(c.neutronState, "neutron-server.log"),
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		ProcRoot:   "/proc", ControllerPID: ctrlProc.PID(),
		Groups:  map[string]int{"controller": ctrlProc.PID(), "neutron-server": neutronPID, "mariadb": mariadbPID},
		Timeout: c.timeout, Parallel: c.parallel, Log: logf,
		Health: func() error {
			if done, err := ctrlProc.Exited(); done {
				return fmt.Errorf("kuryr-controller exited (%v); see %s", err, filepath.Join(c.out, "controller.log"))
			}
			select {
			case err := <-agentDone:
				agentDone <- err // for the deferred stop
				return fmt.Errorf("agent stand-in stopped: %v", err)
			default:
			}
			return nil
		},
	}

	// 6. A first pod with cold caches, then the rounds.
	var results []bench.Result
	r, err := env.Run(ctx, "first pod (cold)", "bench-cold", 1)
	if err != nil {
		return err
	}
	results = append(results, r)
	for _, n := range counts {
		r, err := env.Run(ctx, fmt.Sprintf("N=%d", n), fmt.Sprintf("bench-n%d", n), n)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	activated, passes, deadlocks := agent.Activated()
	// A multi-table UPDATE counts a row in ports and one in standardattributes per port.
	logf("agent stand-in: %d ports set ACTIVE in %d passes (%d deadlocks retried)", activated/2, passes, deadlocks)
	return writeResults(c, results, topo, args)
}

func writeResults(c config, results []bench.Result, topo bench.Topology, args []string) error {
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
	fmt.Fprintf(&md, "- kuryr-controller %s\n\n", strings.Join(args[2:], " "))
	if err := bench.WriteMarkdown(&md, results); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.out, "results.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	for i, r := range results {
		f, err := os.Create(filepath.Join(c.out, fmt.Sprintf("neutron-requests-%d-n%d.tsv", i, r.N)))
		if err != nil {
			return err
		}
		if err := errors.Join(bench.WriteTimeline(f, r.Start, r.Requests), f.Close()); err != nil {
			return err
		}
	}
	svg, err := os.Create(filepath.Join(c.out, "latency.svg"))
	if err != nil {
		return err
	}
	werr := bench.WriteSVG(svg, chartTitle, results)
	if err := errors.Join(werr, svg.Close()); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(struct {
		Machine  bench.Machine
		Topology bench.Topology
		Results  []bench.Result
	}{machine, topo, results}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.out, "results.json"), raw, 0o644); err != nil {
		return err
	}
	fmt.Print(md.String())
	logf("results in %s (results.md, latency.svg, results.json, controller.log)", c.out)
	return nil
}

const chartTitle = "kuryr-controller, nested-vlan, real Neutron on MariaDB"

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
