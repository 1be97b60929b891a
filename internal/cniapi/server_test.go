package cniapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
)

// fakeHandler records requests and answers with what it is told.
type fakeHandler struct {
	mu   sync.Mutex
	reqs []*Request
	err  error // returned by every method when set
}

var _ Handler = (*fakeHandler)(nil)

func (h *fakeHandler) record(r *Request) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reqs = append(h.reqs, r)
	return h.err
}

func (h *fakeHandler) Add(_ context.Context, r *Request) (types.Result, error) {
	if err := h.record(r); err != nil {
		return nil, err
	}
	return &current.Result{ // no CNIVersion: the server fills it in
		Interfaces: []*current.Interface{{Name: r.IfName, Mac: "fa:16:3e:00:00:01", Sandbox: r.Netns}},
	}, nil
}
func (h *fakeHandler) Check(_ context.Context, r *Request) error  { return h.record(r) }
func (h *fakeHandler) Del(_ context.Context, r *Request) error    { return h.record(r) }
func (h *fakeHandler) Status(_ context.Context, r *Request) error { return h.record(r) }
func (h *fakeHandler) GC(_ context.Context, r *Request) error     { return h.record(r) }

// startServer serves h on a socket in a temporary directory.
func startServer(t *testing.T, h Handler, opts ...ServerOption) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "cni.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(h, opts...).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func TestServerRoundTrip(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	path := startServer(t, h)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, want 0600", fi.Mode().Perm())
	}

	c := NewClient(path)
	ctx := context.Background()
	if err := c.WaitReady(ctx, time.Second); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	req := validRequest(t)
	resp, err := c.Do(ctx, req)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if resp.CNIVersion != current.ImplementedSpecVersion || !strings.Contains(string(resp.Result), `"fa:16:3e:00:00:01"`) {
		t.Fatalf("ADD response = %s (version %q)", resp.Result, resp.CNIVersion)
	}
	if len(h.reqs) != 1 {
		t.Fatalf("handler saw %d requests", len(h.reqs))
	}
	got := h.reqs[0]
	if got.NetConf == nil || got.NetConf.Driver != netconf.DriverNestedDPDK || got.Args.PodUID != req.Args.PodUID ||
		got.ContainerID != req.ContainerID || got.Netns != req.Netns || string(got.Config) != string(req.Config) {
		t.Fatalf("handler got %+v", got)
	}
}

func TestServerCarriesErrorCodes(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	path := startServer(t, h)
	c := NewClient(path)
	for _, want := range []*types.Error{
		types.NewError(CodeUnknownContainer, "no such container c1", ""),
		types.NewError(CodeInvalidEnv, "bad env", ""),
		types.NewError(CodeBadConfig, "invalid subnetId: x", "details"),
		types.NewError(CodeTryAgainLater, "pod's interfaces not ready", ""),
		types.NewError(CodePluginNotAvailable, "not ready", ""),
		types.NewError(CodeInternal, "boom", ""),
	} {
		h.mu.Lock()
		h.err = fmt.Errorf("wrapped: %w", want)
		h.mu.Unlock()
		for _, cmd := range commands {
			r := validRequest(t)
			r.Command = cmd
			_, err := c.Do(context.Background(), r)
			var got *types.Error
			if !errors.As(err, &got) || *got != *want {
				t.Errorf("%s: error = %#v, want %#v", cmd, err, want)
			}
		}
	}
	// A plain error becomes 999 with its text.
	h.mu.Lock()
	h.err = errors.New("plain failure for container 0123abcd")
	h.mu.Unlock()
	_, err := c.Do(context.Background(), validRequest(t))
	var got *types.Error
	if !errors.As(err, &got) || got.Code != CodeInternal || got.Msg != "plain failure for container 0123abcd" {
		t.Errorf("plain error = %#v", err)
	}
}

func TestServerBadRequest(t *testing.T) {
	t.Parallel()
	h := &fakeHandler{}
	c := NewClient(startServer(t, h))
	r := validRequest(t)
	r.IfName = ""
	_, err := c.Do(context.Background(), r)
	var got *types.Error
	if !errors.As(err, &got) || got.Code != CodeBadConfig || !strings.Contains(got.Msg, "ifName") {
		t.Fatalf("error = %#v, want code 7 naming ifName", err)
	}
	if len(h.reqs) != 0 {
		t.Fatalf("handler called with a bad request")
	}
}

func TestServerReadiness(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	readyErr := errors.New("informers not synced")
	path := startServer(t, &fakeHandler{}, WithReadiness(func() error {
		mu.Lock()
		defer mu.Unlock()
		return readyErr
	}))
	c := NewClient(path)
	err := c.WaitReady(context.Background(), 200*time.Millisecond)
	var nr *NotReadyError
	if !errors.As(err, &nr) || nr.Reason != "informers not synced" {
		t.Fatalf("WaitReady = %v, want not ready with the reason", err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		readyErr = nil
		mu.Unlock()
	}()
	if err := c.WaitReady(context.Background(), 10*time.Second); err != nil {
		t.Fatalf("WaitReady after becoming ready: %v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Nothing there at all.
	missing := filepath.Join(dir, "missing.sock")
	// A stale socket file nobody listens on (daemon crashed).
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = ln.Close()
	for _, p := range []string{missing, stale} {
		c := NewClient(p)
		_, err := c.Do(context.Background(), validRequest(t))
		var ue *UnreachableError
		if !errors.As(err, &ue) || ue.Path != p {
			t.Errorf("Do on %s: %v, want UnreachableError", p, err)
		}
		start := time.Now()
		err = c.WaitReady(context.Background(), 300*time.Millisecond)
		if !errors.As(err, &ue) {
			t.Errorf("WaitReady on %s: %v, want UnreachableError", p, err)
		}
		if time.Since(start) < 300*time.Millisecond {
			t.Errorf("WaitReady on %s gave up before its bound", p)
		}
	}
}

func TestListen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A stale socket is replaced.
	path := filepath.Join(dir, "cni.sock")
	ln1, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ln1.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = ln1.Close()
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	_ = ln2.Close()
	// A regular file is not.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("Listen clobbered a regular file")
	}
}

func TestAsCNIError(t *testing.T) {
	t.Parallel()
	if AsCNIError(nil) != nil {
		t.Fatal("AsCNIError(nil) != nil")
	}
	e := types.NewError(CodeTryAgainLater, "later", "")
	if AsCNIError(fmt.Errorf("x: %w", e)) != e {
		t.Fatal("wrapped *types.Error not unwrapped")
	}
	if got := AsCNIError(errors.New("x")); got.Code != CodeInternal || got.Msg != "x" {
		t.Fatalf("plain error = %+v", got)
	}
}
