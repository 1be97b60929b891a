package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// binDir holds the real kuryr-cni binary, built once by TestMain: the tests
// run it exactly as a container runtime would.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kuryr-cni-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if _, err := testenv.GoBuild(dir, "."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// recorder is a fake daemon Handler that records every request and answers
// with a fixed result or a configured error.
type recorder struct {
	mu   sync.Mutex
	reqs []*cniapi.Request
	errs map[string]error // by command
}

var _ cniapi.Handler = (*recorder)(nil)

func (r *recorder) record(req *cniapi.Request) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return r.errs[req.Command]
}

func (r *recorder) setErr(cmd string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.errs == nil {
		r.errs = map[string]error{}
	}
	r.errs[cmd] = err
}

func (r *recorder) take() []*cniapi.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

func (r *recorder) Add(_ context.Context, req *cniapi.Request) (types.Result, error) {
	if err := r.record(req); err != nil {
		return nil, err
	}
	ip, _ := types.ParseCIDR("10.0.0.5/24")
	_, dst, _ := net.ParseCIDR("0.0.0.0/0")
	idx := 0
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: req.IfName, Mac: "fa:16:3e:00:00:01", Sandbox: req.Netns}},
		IPs:        []*current.IPConfig{{Interface: &idx, Address: *ip, Gateway: net.ParseIP("10.0.0.1")}},
		Routes:     []*types.Route{{Dst: *dst, GW: net.ParseIP("10.0.0.1")}},
	}, nil
}
func (r *recorder) Check(_ context.Context, req *cniapi.Request) error  { return r.record(req) }
func (r *recorder) Del(_ context.Context, req *cniapi.Request) error    { return r.record(req) }
func (r *recorder) Status(_ context.Context, req *cniapi.Request) error { return r.record(req) }
func (r *recorder) GC(_ context.Context, req *cniapi.Request) error     { return r.record(req) }

// serve starts a daemon-side Server for h on path; it stops with the test.
func serve(t *testing.T, h cniapi.Handler, path string, opts ...cniapi.ServerOption) {
	t.Helper()
	stop, err := startServer(h, path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

func startServer(h cniapi.Handler, path string, opts ...cniapi.ServerOption) (stop func() error, err error) {
	ln, err := cniapi.Listen(path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cniapi.NewServer(h, opts...).Serve(ctx, ln) }()
	return func() error { cancel(); return <-done }, nil
}

// harness is one libcni client (as containerd holds) and one network.
type harness struct {
	cni    *libcni.CNIConfig
	list   *libcni.NetworkConfigList
	rt     *libcni.RuntimeConf
	socket string
	// binDir is this harness's CNI binary directory: the shim and the
	// node-local file naming socket.
	binDir string
}

const podUID = "5bae17b3-ddbb-4ec6-8adb-30fca2bcfefa"

var podAnnotations = map[string]string{"k8s.v1.cni.cncf.io/networks": `[{"name":"dpdk-net","interface":"dpdk0"}]`}

// newHarness writes the network the way a node's /etc/cni/net.d would hold
// it and the runtime config containerd would pass for a pod sandbox.
func newHarness(t *testing.T, cniVersion string) *harness {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(dir, "cni.sock")
	bin := filepath.Join(dir, "bin")
	if err := testenv.NodeCNIBin(binDir, bin, socket); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{
  "cniVersion": %q,
  "name": "kuryr",
  "plugins": [{
    "type": "kuryr-cni",
    "daemonSocket": %q,
    "driver": "nested-macvlan",
    "mtu": 1450,
    "capabilities": {"io.kubernetes.cri.pod-annotations": true, "CNIDeviceInfoFile": true}
  }]
}`, cniVersion, socket)
	list, err := libcni.NetworkConfFromBytes([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	const sandbox = "0123456789abcdef0123456789abcdef"
	return &harness{
		cni:    libcni.NewCNIConfigWithCacheDir([]string{bin}, filepath.Join(dir, "cache"), nil),
		list:   list,
		socket: socket,
		binDir: bin,
		rt: &libcni.RuntimeConf{
			ContainerID: sandbox,
			NetNS:       filepath.Join(dir, "netns", "cni-0000"), // containerd's state dir; not opened by the fake
			IfName:      "eth0",
			Args: [][2]string{ // containerd's order
				{"K8S_POD_NAMESPACE", "default"},
				{"K8S_POD_NAME", "web-0"},
				{"K8S_POD_INFRA_CONTAINER_ID", sandbox},
				{"K8S_POD_UID", podUID},
				{"IgnoreUnknown", "1"},
			},
			CapabilityArgs: map[string]any{
				"io.kubernetes.cri.pod-annotations": podAnnotations,
				"CNIDeviceInfoFile":                 "/var/run/k8s.cni.cncf.io/devinfo/cni/x-eth0.json",
				"portMappings":                      []any{}, // not declared: must not reach the plugin
			},
		},
	}
}

// cniErr asserts err carries a CNI error with the wanted code and returns it.
func cniErr(t *testing.T, what string, err error, code uint) *types.Error {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v (%T), want CNI error code %d", what, err, err, code)
	}
	if e.Code != code {
		t.Fatalf("%s: code %d (%q), want %d", what, e.Code, e.Error(), code)
	}
	return e
}

func TestLibcniLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1.1.0")
	rec := &recorder{}
	serve(t, rec, h.socket)
	ctx := context.Background()

	res, err := h.cni.AddNetworkList(ctx, h.list, h.rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if cur.CNIVersion != "1.1.0" || len(cur.Interfaces) != 1 || cur.Interfaces[0].Mac != "fa:16:3e:00:00:01" ||
		len(cur.IPs) != 1 || cur.IPs[0].Address.String() != "10.0.0.5/24" {
		t.Fatalf("ADD result = %+v", cur)
	}
	reqs := rec.take()
	if len(reqs) != 1 {
		t.Fatalf("daemon saw %d requests for one ADD", len(reqs))
	}
	add := reqs[0]
	if add.Command != cniapi.CmdAdd || add.ContainerID != h.rt.ContainerID || add.Netns != h.rt.NetNS ||
		add.IfName != "eth0" || add.Path != h.binDir {
		t.Fatalf("ADD request = %+v", add)
	}
	wantArgs := cniapi.CNIArgs{PodNamespace: "default", PodName: "web-0", PodUID: podUID,
		PodInfraContainerID: h.rt.ContainerID, IgnoreUnknown: true}
	if fmt.Sprint(add.Args) != fmt.Sprint(wantArgs) {
		t.Fatalf("ADD args = %+v, want %+v", add.Args, wantArgs)
	}
	nc := add.NetConf
	if nc.Name != "kuryr" || nc.Driver != netconf.DriverNestedMACVLAN || nc.MTU != 1450 || nc.DaemonSocket != h.socket ||
		nc.RuntimeConfig.PodAnnotations["k8s.v1.cni.cncf.io/networks"] != podAnnotations["k8s.v1.cni.cncf.io/networks"] ||
		nc.RuntimeConfig.DeviceInfoFile != "/var/run/k8s.cni.cncf.io/devinfo/cni/x-eth0.json" {
		t.Fatalf("ADD net conf = %+v", nc)
	}
	if strings.Contains(string(add.Config), "portMappings") {
		t.Fatalf("undeclared capability reached the plugin: %s", add.Config)
	}

	if err := h.cni.CheckNetworkList(ctx, h.list, h.rt); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	chk := rec.take()
	if len(chk) != 1 || chk[0].Command != cniapi.CmdCheck || chk[0].NetConf.PrevResult == nil ||
		chk[0].NetConf.PrevResult.IPs[0].Address.String() != "10.0.0.5/24" {
		t.Fatalf("CHECK requests = %+v", chk)
	}

	if err := h.cni.DelNetworkList(ctx, h.list, h.rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	del := rec.take()
	if len(del) != 1 || del[0].Command != cniapi.CmdDel || del[0].NetConf.PrevResult == nil {
		t.Fatalf("DEL requests = %+v (want prevResult from the cache)", del)
	}
	// DEL again, as after a failed ADD or a kubelet retry: no cached
	// result any more, still forwarded, still a success.
	if err := h.cni.DelNetworkList(ctx, h.list, h.rt); err != nil {
		t.Fatalf("second DEL: %v", err)
	}
	del = rec.take()
	if len(del) != 1 || del[0].Command != cniapi.CmdDel || del[0].NetConf.PrevResult != nil {
		t.Fatalf("second DEL requests = %+v", del)
	}

	// GC: an attachment libcni has cached but that is not valid gets a DEL,
	// then the plugin gets GC with the valid list.
	if _, err := h.cni.AddNetworkList(ctx, h.list, h.rt); err != nil {
		t.Fatalf("ADD before GC: %v", err)
	}
	rec.take()
	keep := types.GCAttachment{ContainerID: "fedcba9876543210", IfName: "eth0"}
	if err := h.cni.GCNetworkList(ctx, h.list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{keep}}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	gc := rec.take()
	if len(gc) != 2 || gc[0].Command != cniapi.CmdDel || gc[0].ContainerID != h.rt.ContainerID ||
		gc[1].Command != cniapi.CmdGC || len(gc[1].NetConf.ValidAttachments) != 1 || gc[1].NetConf.ValidAttachments[0] != keep {
		t.Fatalf("GC requests = %+v", gc)
	}

	if err := h.cni.GetStatusNetworkList(ctx, h.list); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	if st := rec.take(); len(st) != 1 || st[0].Command != cniapi.CmdStatus {
		t.Fatalf("STATUS requests = %+v", st)
	}
}

func TestLibcniResultVersions(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, v)
			serve(t, &recorder{}, h.socket)
			res, err := h.cni.AddNetworkList(context.Background(), h.list, h.rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if res.Version() != v {
				t.Fatalf("result version %q, want %q", res.Version(), v)
			}
			if err := h.cni.DelNetworkList(context.Background(), h.list, h.rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
		})
	}
}

func TestLibcniErrorCodesCrossTheHop(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1.1.0")
	rec := &recorder{}
	serve(t, rec, h.socket)
	ctx := context.Background()
	for _, want := range []*types.Error{
		types.NewError(cniapi.CodeUnknownContainer, "container 0123 unknown", ""),
		types.NewError(cniapi.CodeInvalidEnv, "bad environment", ""),
		types.NewError(cniapi.CodeBadConfig, "invalid subnetId: no such subnet", "subnet 2d6e7a3c"),
		types.NewError(cniapi.CodeTryAgainLater, "interfaces of pod default/web-0 not ready", ""),
		types.NewError(cniapi.CodePluginNotAvailable, "daemon not ready", ""),
		types.NewError(cniapi.CodeInternal, "netlink: boom", ""),
	} {
		for _, cmd := range []string{cniapi.CmdAdd, cniapi.CmdDel, cniapi.CmdStatus} {
			rec.setErr(cmd, want)
		}
		_, err := h.cni.AddNetworkList(ctx, h.list, h.rt)
		if got := cniErr(t, "ADD", err, want.Code); got.Msg != want.Msg || got.Details != want.Details {
			t.Fatalf("ADD error = %#v, want %#v", got, want)
		}
		// An error the daemon returns on DEL is not swallowed.
		err = h.cni.DelNetworkList(ctx, h.list, h.rt)
		if got := cniErr(t, "DEL", err, want.Code); got.Msg != want.Msg {
			t.Fatalf("DEL error = %#v, want %#v", got, want)
		}
		err = h.cni.GetStatusNetworkList(ctx, h.list)
		cniErr(t, "STATUS", err, want.Code)
	}
}

func TestLibcniBadConfig(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1.1.0")
	// No daemon: a bad configuration is code 7 at once, naming the field.
	list, err := libcni.NetworkConfFromBytes([]byte(`{"cniVersion":"1.1.0","name":"kuryr","plugins":[{"type":"kuryr-cni","driver":"nested-sriov"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.cni.AddNetworkList(context.Background(), list, h.rt)
	if e := cniErr(t, "ADD", err, cniapi.CodeBadConfig); !strings.Contains(e.Msg, "driver") {
		t.Fatalf("message %q does not name the field", e.Msg)
	}
	// Bad CNI_ARGS are an environment variable's fault: code 4.
	rt := *h.rt
	rt.Args = [][2]string{{"K8S_POD_NAME", "Not_A_Name"}, {"IgnoreUnknown", "1"}}
	_, err = h.cni.AddNetworkList(context.Background(), h.list, &rt)
	if e := cniErr(t, "ADD", err, cniapi.CodeInvalidEnv); !strings.Contains(e.Msg, "K8S_POD_NAME") {
		t.Fatalf("message %q does not name the field", e.Msg)
	}
}

// TestLibcniDelBestEffort: DEL never fails on a malformed prevResult or
// CNI_ARGS (CNI 1.1: DEL is best effort): it still reaches the daemon with
// the container ID and interface name, and the valid CNI_ARGS pairs.
func TestLibcniDelBestEffort(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1.1.0")
	rec := &recorder{}
	serve(t, rec, h.socket)
	// No cached result: libcni passes the plugin configuration's own
	// prevResult, here one that does not parse.
	list, err := libcni.NetworkConfFromBytes([]byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"kuryr","plugins":[{"type":"kuryr-cni",
		"daemonSocket":%q,"prevResult":{"cniVersion":"1.1.0","ips":"not a list"}}]}`, h.socket)))
	if err != nil {
		t.Fatal(err)
	}
	rt := *h.rt
	rt.Args = [][2]string{{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "Not_A_Name"}, {"K8S_POD_UID", podUID}}
	if err := h.cni.DelNetworkList(context.Background(), list, &rt); err != nil {
		t.Fatalf("DEL with a malformed prevResult and CNI_ARGS: %v", err)
	}
	reqs := rec.take()
	if len(reqs) != 1 || reqs[0].Command != cniapi.CmdDel || reqs[0].ContainerID != rt.ContainerID || reqs[0].IfName != "eth0" {
		t.Fatalf("daemon saw %+v, want one DEL of %s eth0", reqs, rt.ContainerID)
	}
	want := cniapi.CNIArgs{PodNamespace: "default", PodUID: podUID}
	if a := reqs[0].Args; a.PodNamespace != want.PodNamespace || a.PodName != "" || a.PodUID != want.PodUID {
		t.Fatalf("DEL args %+v, want the valid pairs %+v", a, want)
	}
	if reqs[0].NetConf.PrevResult != nil {
		t.Fatalf("daemon got prevResult %+v from one that does not parse", reqs[0].NetConf.PrevResult)
	}
}

// TestLibcniDaemonDown covers each command with no daemon listening: ADD
// waits for it (the bound, 10 s) then says code 11; DEL gives up after the
// same bound and succeeds; STATUS is code 50 at once.
func TestLibcniDaemonDown(t *testing.T) {
	t.Parallel()
	t.Run("ADD", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, "1.1.0")
		start := time.Now()
		_, err := h.cni.AddNetworkList(context.Background(), h.list, h.rt)
		e := cniErr(t, "ADD", err, cniapi.CodeTryAgainLater)
		if want := fmt.Sprintf("kuryr-daemon not reachable at %s: is it running?", h.socket); e.Msg != want {
			t.Fatalf("message %q, want %q", e.Msg, want)
		}
		if time.Since(start) < daemonWait {
			t.Fatalf("ADD gave up after %v, before the %v bound", time.Since(start), daemonWait)
		}
	})
	t.Run("ADD stale socket", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, "1.1.0")
		ln, err := net.Listen("unix", h.socket) // a crashed daemon's leftover
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		_ = ln.Close()
		_, err = h.cni.AddNetworkList(context.Background(), h.list, h.rt)
		cniErr(t, "ADD", err, cniapi.CodeTryAgainLater)
	})
	t.Run("DEL", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, "1.1.0")
		if err := h.cni.DelNetworkList(context.Background(), h.list, h.rt); err != nil {
			t.Fatalf("DEL with the daemon down: %v", err)
		}
	})
	t.Run("STATUS", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, "1.1.0")
		start := time.Now()
		err := h.cni.GetStatusNetworkList(context.Background(), h.list)
		e := cniErr(t, "STATUS", err, cniapi.CodePluginNotAvailable)
		if !strings.Contains(e.Msg, h.socket) {
			t.Fatalf("message %q does not name the socket", e.Msg)
		}
		if time.Since(start) > daemonWait/2 {
			t.Fatalf("STATUS took %v; it must not wait for the daemon", time.Since(start))
		}
	})
	t.Run("ADD not ready", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, "1.1.0")
		rec := &recorder{}
		serve(t, rec, h.socket, cniapi.WithReadiness(func() error { return errors.New("pod informer not synced") }))
		_, err := h.cni.AddNetworkList(context.Background(), h.list, h.rt)
		e := cniErr(t, "ADD", err, cniapi.CodeTryAgainLater)
		if !strings.Contains(e.Msg, "pod informer not synced") {
			t.Fatalf("message %q does not say why", e.Msg)
		}
		if len(rec.take()) != 0 {
			t.Fatal("ADD reached a daemon that is not ready")
		}
		err = h.cni.GetStatusNetworkList(context.Background(), h.list)
		cniErr(t, "STATUS", err, cniapi.CodePluginNotAvailable)
	})
	t.Run("ADD daemon starts late", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, "1.1.0")
		rec := &recorder{}
		started := make(chan func() error, 1)
		time.AfterFunc(time.Second, func() {
			stop, err := startServer(rec, h.socket)
			if err != nil {
				t.Errorf("start the daemon late: %v", err)
				stop = func() error { return nil }
			}
			started <- stop
		})
		_, err := h.cni.AddNetworkList(context.Background(), h.list, h.rt)
		if stop := <-started; stop() != nil {
			t.Error("Serve failed")
		}
		if err != nil {
			t.Fatalf("ADD while the daemon starts: %v", err)
		}
		if reqs := rec.take(); len(reqs) != 1 || reqs[0].Command != cniapi.CmdAdd {
			t.Fatalf("late daemon saw %+v", reqs)
		}
	})
}

// TestLibcniDaemonDiesHoldingTheRequest: a daemon that accepted the
// request and died before answering (its connection closed with no
// response, as when it is SIGKILLed mid-ADD) is code 11 at once, naming
// the verb, for ADD and for DEL alike: it was reachable, so DEL's "daemon
// down" success does not apply and the runtime retries.
func TestLibcniDaemonDiesHoldingTheRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1.1.0")
	ln, err := cniapi.Listen(h.socket)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{}, 4)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+cniapi.PathHealthz, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("POST "+cniapi.PathCNI, func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		held <- struct{}{}
		_ = conn.Close()
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	for _, verb := range []string{cniapi.CmdAdd, cniapi.CmdDel} {
		start := time.Now()
		var err error
		if verb == cniapi.CmdAdd {
			_, err = h.cni.AddNetworkList(context.Background(), h.list, h.rt)
		} else {
			err = h.cni.DelNetworkList(context.Background(), h.list, h.rt)
		}
		e := cniErr(t, verb, err, cniapi.CodeTryAgainLater)
		if want := fmt.Sprintf("kuryr-daemon at %s did not answer the %s request", h.socket, verb); !strings.HasPrefix(e.Msg, want) {
			t.Fatalf("%s: message %q, want it to start with %q", verb, e.Msg, want)
		}
		select {
		case <-held:
		default:
			t.Fatalf("%s: the request never reached the daemon", verb)
		}
		if took := time.Since(start); took > daemonWait/2 {
			t.Fatalf("%s took %v: a daemon that died holding the request must not be waited for", verb, took)
		}
	}
}
