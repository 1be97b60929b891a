package cniapi

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// blockingHandler's Add holds its caller until release is closed or the
// request's context ends, and counts how many callers it holds at once.
type blockingHandler struct {
	fakeHandler
	entered chan struct{} // one send per Add entered
	release chan struct{}
	mu      sync.Mutex
	now     int
	most    int
}

func newBlockingHandler() *blockingHandler {
	return &blockingHandler{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (h *blockingHandler) Add(ctx context.Context, r *Request) (types.Result, error) {
	h.mu.Lock()
	h.now++
	h.most = max(h.most, h.now)
	h.mu.Unlock()
	defer func() { h.mu.Lock(); h.now--; h.mu.Unlock() }()
	h.entered <- struct{}{}
	select {
	case <-h.release:
		return &current.Result{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h *blockingHandler) mostAtOnce() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.most
}

func testLimits() Limits {
	l := DefaultLimits()
	l.ReadTimeout, l.WriteTimeout, l.MaxWait = 300*time.Millisecond, 10*time.Second, 10*time.Second
	return l
}

// wantClosedWithin dials path, writes prefix, and checks that the server
// closes the connection after about the read timeout, well before limit.
func wantClosedWithin(t *testing.T, path, prefix string, limit time.Duration) {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, prefix); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s (sent %q)", limit, prefix)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("connection closed after %s, before the read timeout", took)
	}
}

func TestServerCutsOffSilentClient(t *testing.T) {
	t.Parallel()
	path := startServer(t, &fakeHandler{}, WithLimits(testLimits()))
	wantClosedWithin(t, path, "", 3*time.Second)
}

func TestServerCutsOffSlowBody(t *testing.T) {
	t.Parallel()
	path := startServer(t, &fakeHandler{}, WithLimits(testLimits()))
	// Headers promise a body that never comes.
	wantClosedWithin(t, path, "POST /cni HTTP/1.1\r\nHost: kuryr-daemon\r\nContent-Length: 100\r\n\r\n{", 3*time.Second)
}

func TestServerAnswersBeforeWriteTimeout(t *testing.T) {
	t.Parallel()
	l := testLimits()
	l.WriteTimeout = 500 * time.Millisecond
	path := startServer(t, newBlockingHandler(), WithLimits(l))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := NewClient(path).Do(ctx, validRequest(t))
	var cerr *types.Error
	if !errors.As(err, &cerr) || cerr.Code != CodeInternal || ctx.Err() != nil {
		t.Fatalf("error = %#v, want the handler's deadline as a CNI error before the client gives up", err)
	}
}

// doConcurrently sends n ADDs at once and returns their errors, in no order.
func doConcurrently(t *testing.T, path string, n int) <-chan error {
	errs := make(chan error, n)
	for range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := NewClient(path).Do(ctx, validRequest(t))
			errs <- err
		}()
	}
	return errs
}

func TestServerCapRefusesExcessWithTryAgain(t *testing.T) {
	t.Parallel()
	l := testLimits()
	l.MaxRequests, l.MaxWait = 2, 200*time.Millisecond
	h := newBlockingHandler()
	errs := doConcurrently(t, startServer(t, h, WithLimits(l)), 3)
	<-h.entered
	<-h.entered
	var cerr *types.Error
	if err := <-errs; !errors.As(err, &cerr) || cerr.Code != CodeTryAgainLater || !strings.Contains(cerr.Msg, "busy") {
		t.Fatalf("third request: error = %#v, want code 11 saying the daemon is busy", err)
	}
	close(h.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("request within the cap: %v", err)
		}
	}
	if m := h.mostAtOnce(); m != 2 {
		t.Errorf("handler ran %d requests at once, want 2", m)
	}
}

func TestServerCapQueuesExcess(t *testing.T) {
	t.Parallel()
	l := testLimits()
	l.MaxRequests = 1
	h := newBlockingHandler()
	errs := doConcurrently(t, startServer(t, h, WithLimits(l)), 3)
	<-h.entered
	select {
	case <-h.entered:
		t.Fatal("a second request entered the handler while the first held the only slot")
	case err := <-errs:
		t.Fatalf("a request over the cap ended before a slot freed: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(h.release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("queued request: %v", err)
		}
	}
	if m := h.mostAtOnce(); m != 1 {
		t.Errorf("handler ran %d requests at once, want 1", m)
	}
}

func TestLimitsValidate(t *testing.T) {
	t.Parallel()
	if err := (&Limits{}).Validate(); err == nil {
		t.Fatal("zero limits accepted")
	} else {
		for _, f := range []string{"--cni-read-timeout", "--cni-write-timeout", "--cni-idle-timeout", "--cni-max-requests"} {
			if !strings.Contains(err.Error(), f) {
				t.Errorf("error %q does not name %s", err, f)
			}
		}
	}
	l := DefaultLimits()
	if err := l.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
