package aio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/imagebuild"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// Options configure an environment. The zero value is the all-in-one of
// `make run`, given RepoRoot (or a working directory inside the repository).
type Options struct {
	// Nodes is the number of simulated node VMs; 2 when zero.
	Nodes int
	// ID makes every name the environment uses unique (namespaces, links,
	// directories), so that environments run side by side; random when
	// empty. At most 8 characters.
	ID string
	// RepoRoot is the repository (deploy/crds, and the source of the
	// binaries); found from the working directory when empty.
	RepoRoot string
	// KubeBinDir holds etcd and the Kubernetes binaries; the cache of
	// hack/build-kube-bins.sh when empty.
	KubeBinDir string
	// BinDir holds kuryr-controller, kuryr-daemon and kuryr-cni (and
	// kuryrctl); when empty, $KURYR_AIO_BIN_DIR (make test sets it to the
	// binaries it has just built), else they are built (go build, cached)
	// into the state directory.
	BinDir string
	// Log receives progress lines; nothing when nil.
	Log io.Writer
	// NoKuryr starts neither kuryr-controller nor kuryr-daemon; with
	// CNIBinDir and CNIConfig the kubelet stand-ins then call another CNI
	// plugin (tests of the environment itself).
	NoKuryr bool
	// CNIBinDir is the kubelet stand-ins' CNI_PATH; BinDir when empty.
	CNIBinDir string
	// CNIConfig is the network configuration list the kubelet stand-ins use
	// instead of kuryr-cni's. "@SOCKET@" in it is replaced by the node's
	// daemon socket.
	CNIConfig []byte
	// ControllerArgs are extra kuryr-controller flags (not with RealNodes,
	// where the controller is the overlay's Deployment).
	ControllerArgs []string
	// RealNodes runs a real containerd and kubelet per node (realnode.go)
	// instead of the kubelet stand-in.
	RealNodes bool
	// NodeBinDir holds containerd, its shim, ctr, runc and the kubelet
	// (RealNodes); the cache of hack/build-node-bins.sh when empty.
	NodeBinDir string
	// Multus (with RealNodes) runs real Multus as the nodes' CNI, kuryr-cni
	// its clusterNetwork and every NAD's delegate, with kuryr-daemon in
	// delegate mode: deploy/overlays/all-in-one-multus (multus.go).
	Multus bool
	// MultusBinDir holds multus and thin_entrypoint (Multus); the cache of
	// hack/build-multus.sh when empty.
	MultusBinDir string
	// DRA (with RealNodes) turns kuryr-controller's pre-attached DPDK pools
	// on (DRAPoolMax ports per node, declared so made at start), so that the
	// DRA driver kuryr-daemon runs on every real node publishes each node's
	// pool ports and pods get them through ResourceClaims (dra.go). Off,
	// the driver runs too but publishes no device.
	DRA bool
	// DPDKPool, with Max set, turns kuryr-controller's pre-attached DPDK
	// pools on for the stand-in nodes (with RealNodes, DRA does): sized so,
	// declared on the data-plane subnet with PoolSecurityGroup, so made on
	// every node at start, with the nodes' NodePCISlots hot-plug slots
	// counted (pools.go). WaitPools waits until they are filled.
	DPDKPool PoolSize
	// PodPools, with DPDKPool, declares MgmtDriver pools of the same size
	// on every node too, for eth0's pod subnet and for the management
	// subnet: their networks name no security groups and get
	// PoolSecurityGroup as podSecurityGroups, so that eth0 and a
	// management interface come from the pools as well.
	PodPools bool
	// DataPlaneCIDR and ManagementCIDR are the data-plane and management
	// subnets' ranges; 10.3.0.0/24 and 10.2.0.0/24 when empty (the bench
	// asks for /16s: a port on each for each of 1000 pods).
	DataPlaneCIDR, ManagementCIDR string
	// Pprof serves Go's /debug/pprof of kuryr-controller and of each
	// stand-in node's kuryr-daemon on a free loopback port
	// (--pprof-bind-address=127.0.0.1:PORT on its command line).
	Pprof bool
}

// Networks are the seeded Neutron subnets.
type Networks struct {
	Worker, Pod, Management, DataPlane cloudsim.Subnet
}

// Env is a running all-in-one environment.
type Env struct {
	// ID is the environment's unique name part.
	ID string
	// StateDir holds kubeconfigs, logs and the nodes' files; removed by Close.
	StateDir string
	// Cloud is the simulated OpenStack.
	Cloud *cloudsim.Cloud
	// Networks are the seeded subnets.
	Networks Networks
	// VLAN says whether the kernel has 802.1Q; MgmtDriver is the driver used
	// for eth0 and the management network (nested-vlan with VLAN support,
	// else nested-macvlan).
	VLAN       bool
	MgmtDriver v1alpha1.Driver
	// Nodes are the simulated node VMs.
	Nodes []*Node
	// Controller is the kuryr-controller process (nil with NoKuryr, and on
	// real nodes, where it is the Deployment's pod).
	Controller *Process
	// Client and Clientset talk to the API server as admin.
	Client    client.Client
	Clientset kubernetes.Interface

	opts             Options
	cp               controlPlane
	mountNSDir       string       // holds the real nodes' mount namespaces
	pauseImage       string       // the real nodes' sandbox image (OCI tarball)
	kuryrImage       string       // the kuryr-dpdk image of binDir (OCI tarball; real nodes)
	demoImage        string       // DemoImage (OCI tarball; real nodes)
	multusImage      string       // MultusImage (OCI tarball; Options.Multus)
	poolSG           string       // the security group of the pools (Options.DRA, Options.DPDKPool)
	fabricProxy      *fabricProxy // the API server for the real nodes
	cloudProxy       *fabricProxy // the simulated cloud for the real nodes
	fabricCloudURL   string       // the cloud's URL on the fabric
	binDir           string
	fabric           string // path of the fabric namespace
	created          *createdTracker
	controllerHealth string

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	teardown []func() error
	procs    []*Process
	closed   bool
}

// BinDirEnv names the directory of prebuilt kuryr-dpdk binaries that
// Options.BinDir defaults to.
const BinDirEnv = "KURYR_AIO_BIN_DIR"

// Scheme knows the built-in types, the project's CRDs and NADs.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, nadv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// ErrNotRoot says the environment needs root.
var ErrNotRoot = errors.New("the all-in-one environment needs root (it creates network namespaces); run it with sudo")

// Start brings the whole environment up. On failure everything it made so
// far is removed before it returns. ctx bounds the setup only; the
// environment runs until Close.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if opts.Nodes == 0 {
		opts.Nodes = 2
	}
	if opts.ID == "" {
		opts.ID = randomHex(3)
	}
	if len(opts.ID) > 8 {
		return nil, fmt.Errorf("environment ID %q longer than 8 characters", opts.ID)
	}
	if opts.RepoRoot == "" {
		if opts.RepoRoot, err = findRepoRoot(); err != nil {
			return nil, err
		}
	}
	if opts.KubeBinDir == "" {
		opts.KubeBinDir = testenv.AssetsDir()
	}
	if opts.NodeBinDir == "" {
		opts.NodeBinDir = testenv.NodeBinDir()
	}
	if opts.BinDir == "" {
		opts.BinDir = os.Getenv(BinDirEnv)
	}
	if opts.Multus && opts.MultusBinDir == "" {
		opts.MultusBinDir = testenv.MultusBinDir()
	}
	// Absolute: real nodes' programs start in other mount namespaces,
	// where nsenter leaves the working directory.
	for _, d := range []*string{&opts.BinDir, &opts.KubeBinDir, &opts.NodeBinDir, &opts.CNIBinDir, &opts.MultusBinDir} {
		if *d != "" {
			if *d, err = filepath.Abs(*d); err != nil {
				return nil, err
			}
		}
	}
	if opts.Multus && (!opts.RealNodes || opts.NoKuryr) {
		return nil, errors.New("option Multus needs RealNodes (containerd runs Multus) and kuryr (its delegate)")
	}
	if opts.DRA && (!opts.RealNodes || opts.NoKuryr) {
		return nil, errors.New("option DRA needs RealNodes (the kubelet runs the DRA driver) and kuryr (the driver)")
	}
	if opts.PodPools && opts.DPDKPool.Max == 0 {
		return nil, errors.New("option PodPools needs DPDKPool (their size)")
	}
	if opts.DPDKPool.Max > 0 && (opts.RealNodes || opts.NoKuryr) {
		return nil, errors.New("option DPDKPool is for kuryr on the stand-in nodes (on real nodes, option DRA makes the DPDK pools)")
	}
	if opts.RealNodes && len(opts.ControllerArgs) > 0 {
		return nil, fmt.Errorf("ControllerArgs %v: on real nodes kuryr-controller is the Deployment of deploy/overlays/all-in-one", opts.ControllerArgs)
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	e := &Env{ID: opts.ID, opts: opts}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			if cerr := e.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("and tearing down: %w", cerr))
			}
		}
	}()
	if reaped, err := reapStale(); err != nil {
		e.logf("warning: %v", err)
	} else if len(reaped) > 0 {
		e.logf("removed what killed environments %v left behind", reaped)
	}
	e.StateDir, err = os.MkdirTemp("", "kuryr-aio-"+e.ID+"-")
	if err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	dir := e.StateDir
	e.defer_(func() error { return os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(e.LogDir(), 0o755); err != nil {
		return nil, err
	}
	start := time.Now()

	if e.VLAN, err = KernelHasVLAN(e.nsName("vlanprobe")); err != nil {
		return nil, fmt.Errorf("probe the kernel for VLAN support: %w", err)
	}
	e.MgmtDriver = v1alpha1.DriverNestedMACVLAN
	if e.VLAN {
		e.MgmtDriver = v1alpha1.DriverNestedVLAN
		e.logf("kernel has 802.1Q VLAN: eth0 and the management network use nested-vlan")
	} else {
		e.logf("kernel has no 802.1Q VLAN support: eth0 and the management network use nested-macvlan")
	}

	if err := e.prepareBinaries(ctx); err != nil {
		return nil, err
	}
	if err := e.startCloud(ctx); err != nil {
		return nil, err
	}
	e.logf("starting etcd, kube-apiserver, kube-scheduler, kube-controller-manager from %s", opts.KubeBinDir)
	if err := e.startControlPlane(ctx); err != nil {
		return nil, err
	}
	if e.Client, err = client.New(e.cp.Admin, client.Options{Scheme: Scheme}); err != nil {
		return nil, fmt.Errorf("API client: %w", err)
	}
	if e.Clientset, err = kubernetes.NewForConfig(e.cp.Admin); err != nil {
		return nil, fmt.Errorf("API clientset: %w", err)
	}
	e.created = newCreatedTracker(e.ctx, e.Clientset)

	if err := e.startNodes(ctx); err != nil {
		return nil, err
	}
	switch {
	case opts.NoKuryr:
	case opts.RealNodes:
		if err := e.deployKuryr(ctx); err != nil {
			return nil, err
		}
	default:
		if err := e.startController(ctx); err != nil {
			return nil, err
		}
		for _, n := range e.Nodes {
			if err := e.startDaemon(ctx, n); err != nil {
				return nil, err
			}
		}
	}
	if opts.RealNodes {
		if err := e.waitRealNodesReady(ctx); err != nil {
			return nil, err
		}
		if opts.DRA {
			if err := e.makeDPDKPools(ctx); err != nil {
				return nil, err
			}
		}
	} else {
		for _, n := range e.Nodes {
			if err := e.startKubelet(n); err != nil {
				return nil, err
			}
		}
	}
	e.logf("environment %s up in %.1f s: %d nodes; kubeconfig %s", e.ID, time.Since(start).Seconds(), len(e.Nodes), e.Kubeconfig())
	return e, nil
}

// Kubeconfig is the admin kubeconfig, for kubectl.
func (e *Env) Kubeconfig() string { return e.cp.Kubeconfigs["admin"] }

// LogDir holds one log file per process.
func (e *Env) LogDir() string { return filepath.Join(e.StateDir, "logs") }

// Context ends when the environment is closed.
func (e *Env) Context() context.Context { return e.ctx }

// Close stops and removes everything the environment made, in reverse order.
// It is safe to call more than once.
func (e *Env) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	steps := e.teardown
	e.teardown = nil
	e.mu.Unlock()
	e.cancel()
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// defer_ registers a teardown step, run by Close in reverse order.
func (e *Env) defer_(f func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.teardown = append(e.teardown, f)
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.opts.Log, "[kuryr-aio %s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// nsName is the name of one of the environment's network namespaces.
func (e *Env) nsName(what string) string { return "kuryr-aio-" + e.ID + "-" + what }

func (e *Env) newProcess(name, bin string, args, env []string) *Process {
	return newProcess(name, e.LogDir(), bin, args, env)
}

// startProc starts p and registers its stop with the teardown.
func (e *Env) startProc(p *Process) error {
	if err := p.start(); err != nil {
		return err
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	e.defer_(func() error { return p.stop(10 * time.Second) })
	return nil
}

// Processes are the programs the environment started.
func (e *Env) Processes() []*Process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Process(nil), e.procs...)
}

// BuildKuryrBinaries builds kuryr-controller, kuryr-daemon, kuryr-cni and
// kuryrctl from the repository at repoRoot into binDir, static and with
// imagebuild.BuildTags (as make build does: they also go into the
// kuryr-dpdk image, which has no libc).
func BuildKuryrBinaries(ctx context.Context, repoRoot, binDir string) error {
	for _, b := range imagebuild.KuryrBinaries {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags="+imagebuild.BuildTags, "-ldflags=-s -w", "-o", filepath.Join(binDir, b), "./cmd/"+b)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/%s: %w\n%s", b, err, out)
		}
	}
	return nil
}

// prepareBinaries finds or builds (BuildKuryrBinaries) imagebuild.KuryrBinaries.
func (e *Env) prepareBinaries(ctx context.Context) error {
	e.binDir = e.opts.BinDir
	if e.binDir == "" {
		e.binDir = filepath.Join(e.StateDir, "bin")
		e.logf("building %s into %s", strings.Join(imagebuild.KuryrBinaries, ", "), e.binDir)
		if err := BuildKuryrBinaries(ctx, e.opts.RepoRoot, e.binDir); err != nil {
			return err
		}
	}
	var need []string
	if e.opts.CNIConfig == nil {
		need = append(need, "kuryr-cni")
	}
	if !e.opts.NoKuryr {
		need = append(need, "kuryr-controller", "kuryr-daemon")
		if e.opts.RealNodes {
			need = imagebuild.KuryrBinaries
		}
	}
	for _, b := range need {
		if _, err := os.Stat(filepath.Join(e.binDir, b)); err != nil {
			return fmt.Errorf("%s not found in %s (make build): %w", b, e.binDir, err)
		}
	}
	return nil
}

// findRepoRoot walks up from the working directory to the directory whose
// go.mod is this module's.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && containsModule(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the kuryr-dpdk repository: set Options.RepoRoot (--repo)")
		}
		dir = parent
	}
}

func containsModule(gomod []byte) bool {
	const m = "module github.com/kuryr-dpdk/kuryr-dpdk\n"
	return len(gomod) >= len(m) && string(gomod[:len(m)]) == m
}
