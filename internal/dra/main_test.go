package dra

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/pcisim"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(testLog)
	os.Exit(testenv.Main(m, &env, testenv.Options{CRDDirectoryPaths: []string{"../../deploy/crds"}}))
}

var nodeSeq atomic.Int64

// node is one simulated node VM: its Node and KuryrNode on the real API
// server, its simulated PCI bus, and the directories the driver uses (the
// kubelet's plugin and registry directories, the CDI spec directory, the
// checkpoints, the device-info root). The driver runs as cfg.
type node struct {
	t      *testing.T
	ctx    context.Context
	name   string
	sim    *pcisim.Sim
	c      client.Client
	scheme *runtime.Scheme
	kube   kubernetes.Interface
	opts   Options
	stop   func()
	// driver is the driver start ran last.
	driver *Driver
	// refusalsExpected: the driver runs without one of its permissions
	// (TestEveryDeployedRuleIsUsed), so its Run may fail.
	refusalsExpected bool
}

// testLog goes to stderr rather than t.Log: the kubelet plugin's
// goroutines may log a moment after a test ends.
var testLog = funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{})

func newNode(t *testing.T, simOpts ...pcisim.Option) *node {
	t.Helper()
	return newNodeNamed(t, fmt.Sprintf("dra-node-%d", nodeSeq.Add(1)), simOpts...)
}

// newNodeNamed is newNode for a node name chosen by the caller; its Node
// may exist already.
func newNodeNamed(t *testing.T, name string, simOpts ...pcisim.Option) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := &node{t: t, ctx: ctx, name: name, sim: startSim(t, simOpts...)}
	var err error
	n.scheme, err = cmdutil.Scheme()
	must(t, err)
	n.c, err = client.New(env.Config, client.Options{Scheme: n.scheme})
	must(t, err)
	n.kube, err = kubernetes.NewForConfig(env.Config)
	must(t, err)
	if err := n.c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}}); !apierrors.IsAlreadyExists(err) {
		must(t, err)
	}
	must(t, n.c.Create(ctx, &v1alpha1.KuryrNode{ObjectMeta: metav1.ObjectMeta{Name: n.name}}))
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "dra")
	must(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	n.opts = Defaults()
	n.opts.Enabled = "true"
	n.opts.NodeName = n.name
	n.opts.SysfsRoot = n.sim.Root()
	n.opts.DevRoot = filepath.Join(dir, "host")
	n.opts.CheckpointDir = filepath.Join(dir, "ckpt")
	n.opts.CDIDir = filepath.Join(dir, "cdi")
	n.opts.DevInfoRoot = filepath.Join(dir, "host")
	n.opts.PluginDir = filepath.Join(dir, "plugin")
	n.opts.RegistrarDir = filepath.Join(dir, "registry")
	n.opts.OwnerTimeout = 2 * time.Second
	n.opts.DeviceTimeout = 5 * time.Second
	// The kubelet makes its registry; the plugin's own directory is the
	// driver's to make (a node's first start has none).
	must(t, os.MkdirAll(n.opts.RegistrarDir, 0o750))
	return n
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// start runs the driver as cfg until stopped (n.stop, or the test's end),
// and waits until its DRA socket answers.
func (n *node) start(cfg *rest.Config) {
	n.t.Helper()
	must(n.t, n.startCtx(n.ctx, cfg))
}

// startCtx is start that gives up, with an error, when ctx ends.
func (n *node) startCtx(ctx context.Context, cfg *rest.Config) error {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	d, err := New(n.opts, cfg, kube, n.scheme, testLog)
	if err != nil {
		return err
	}
	n.driver = d
	runCtx, cancel := context.WithCancel(n.ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !n.refusalsExpected {
			n.t.Errorf("driver Run: %v", err)
		}
	}
	n.t.Cleanup(n.stop)
	sock := filepath.Join(n.opts.PluginDir, "dra.sock")
	return waitFor(ctx, "the DRA socket "+sock, func() (bool, error) {
		select {
		case err := <-done:
			done <- err
			return false, fmt.Errorf("driver stopped before serving: %w", err)
		default:
		}
		// A connection, not the file: a stopped driver leaves its socket.
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return false, nil
		}
		_ = conn.Close()
		return true, nil
	})
}

// waitFor polls cond until it holds, fails, ctx ends or 20 s pass.
func waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// setDevices makes the KuryrNode's status.dpdkDevices devs, as the
// controller writes them.
func (n *node) setDevices(devs ...v1alpha1.DPDKDevice) {
	n.t.Helper()
	must(n.t, n.setDevicesCtx(n.ctx, devs...))
}

func (n *node) setDevicesCtx(ctx context.Context, devs ...v1alpha1.DPDKDevice) error {
	var kn v1alpha1.KuryrNode
	if err := n.c.Get(ctx, types.NamespacedName{Name: n.name}, &kn); err != nil {
		return err
	}
	kn.Status.DPDKDevices = devs
	return n.c.Status().Update(ctx, &kn)
}

// waitSlice waits until the node's published devices satisfy ok, and
// returns them.
func (n *node) waitSlice(what string, ok func([]resourceapi.Device) bool) []resourceapi.Device {
	n.t.Helper()
	ds, err := n.waitSliceCtx(n.ctx, ok)
	if err != nil {
		n.t.Fatalf("the node's ResourceSlices hold %v, not %s: %v", names(ds), what, err)
	}
	return ds
}

// waitSliceCtx is waitSlice that returns an error; the devices are the last
// seen.
func (n *node) waitSliceCtx(ctx context.Context, ok func([]resourceapi.Device) bool) (last []resourceapi.Device, _ error) {
	err := waitFor(ctx, "the node's ResourceSlices", func() (bool, error) {
		list, err := n.kube.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{
			FieldSelector: "spec.nodeName=" + n.name + ",spec.driver=" + DriverName})
		if err != nil {
			return false, err
		}
		last = nil
		for _, s := range list.Items {
			if s.Spec.Pool.Name != n.name {
				return false, fmt.Errorf("slice %s is in pool %q, want %q", s.Name, s.Spec.Pool.Name, n.name)
			}
			last = append(last, s.Spec.Devices...)
		}
		return len(list.Items) > 0 && ok(last), nil
	})
	return last, err
}

// claim creates a ResourceClaim for one device of the node's pool and
// allocates it on the node, as the scheduler would, with the opaque config
// params ("" for none).
func (n *node) claim(name, device, params string) *resourceapi.ResourceClaim {
	n.t.Helper()
	c, err := n.claimCtx(n.ctx, name, device, params)
	must(n.t, err)
	return c
}

func (n *node) claimCtx(ctx context.Context, name, device, params string) (*resourceapi.ResourceClaim, error) {
	c := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{
			Name: "port", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: DriverName},
		}}}},
	}
	if params != "" {
		c.Spec.Devices.Config = []resourceapi.DeviceClaimConfiguration{{DeviceConfiguration: resourceapi.DeviceConfiguration{
			Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: DriverName, Parameters: runtime.RawExtension{Raw: []byte(params)}}}}}
	}
	claims := n.kube.ResourceV1().ResourceClaims("default")
	c, err := claims.Create(ctx, c, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	n.t.Cleanup(func() { _ = claims.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	c.Status.Allocation = &resourceapi.AllocationResult{
		Devices: resourceapi.DeviceAllocationResult{
			Results: []resourceapi.DeviceRequestAllocationResult{{Request: "port", Driver: DriverName, Pool: n.name, Device: device}},
		},
		NodeSelector: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{n.name}},
		}}}},
	}
	for _, cfg := range c.Spec.Devices.Config {
		c.Status.Allocation.Devices.Config = append(c.Status.Allocation.Devices.Config, resourceapi.DeviceAllocationConfiguration{
			Source: resourceapi.AllocationConfigSourceClaim, DeviceConfiguration: cfg.DeviceConfiguration})
	}
	return claims.UpdateStatus(ctx, c, metav1.UpdateOptions{})
}

// kubelet is the kubelet's side of the DRA gRPC API over the plugin's
// socket.
func (n *node) kubelet() drapb.DRAPluginClient {
	n.t.Helper()
	conn, err := grpc.NewClient("unix://"+filepath.Join(n.opts.PluginDir, "dra.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(n.t, err)
	n.t.Cleanup(func() { _ = conn.Close() })
	return drapb.NewDRAPluginClient(conn)
}

// prepare calls NodePrepareResources for one claim as the kubelet does
// and returns that claim's answer.
func (n *node) prepare(claim *resourceapi.ResourceClaim) *drapb.NodePrepareResourceResponse {
	n.t.Helper()
	r, err := n.prepareCtx(n.ctx, claim)
	must(n.t, err)
	return r
}

func (n *node) prepareCtx(ctx context.Context, claim *resourceapi.ResourceClaim) (*drapb.NodePrepareResourceResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := n.kubelet().NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: []*drapb.Claim{
		{Namespace: claim.Namespace, Name: claim.Name, Uid: string(claim.UID)},
	}})
	if err != nil {
		return nil, err
	}
	r, ok := resp.Claims[string(claim.UID)]
	if !ok {
		return nil, fmt.Errorf("NodePrepareResources answered no entry for claim %s: %v", claim.UID, resp)
	}
	return r, nil
}

// unprepare calls NodeUnprepareResources for one claim as the kubelet
// does and returns that claim's error ("" for none).
func (n *node) unprepare(claim *resourceapi.ResourceClaim) string {
	n.t.Helper()
	e, err := n.unprepareCtx(n.ctx, claim)
	must(n.t, err)
	return e
}

func (n *node) unprepareCtx(ctx context.Context, claim *resourceapi.ResourceClaim) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := n.kubelet().NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: []*drapb.Claim{
		{Namespace: claim.Namespace, Name: claim.Name, Uid: string(claim.UID)},
	}})
	if err != nil {
		return "", err
	}
	r, ok := resp.Claims[string(claim.UID)]
	if !ok {
		return "", fmt.Errorf("NodeUnprepareResources answered no entry for claim %s: %v", claim.UID, resp)
	}
	return r.Error, nil
}

// waitDriver waits until the simulated device is bound to driver.
func (n *node) waitDriver(addr, driver string) {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.sim.Driver(addr) != driver {
		if time.Now().After(deadline) {
			n.t.Fatalf("PCI device %s is on %q, want %q", addr, n.sim.Driver(addr), driver)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
