package manager

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cmdutil"
)

// TestStartReturnsWhenStoppedBeforeCacheSync: a manager whose API server
// does not answer (a proxy to the test's API server that closes every
// connection) is told to stop while it waits for its Pod informer to sync;
// Start returns ErrStoppedBeforeSync within seconds. (controller-runtime's
// own Start spins there until the sync.) Opened to the API server
// afterwards, the informer syncs, which also ends the stuck manager's spin.
func TestStartReturnsWhenStoppedBeforeCacheSync(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := newGateProxy(t, env.Config.Host)
	cfg := rest.CopyConfig(env.Config)
	cfg.Host = "https://" + p.addr
	f := Flags{Kube: cmdutil.KubeClient{Kubeconfig: writeKubeconfig(t, cfg), QPS: 20, Burst: 40}, MetricsAddr: "0", ProbeAddr: "0"}
	mgr, err := f.New(ctrl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inf, err := mgr.GetCache().GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Start(mctx, mgr) }()
	// The informer has started listing, through the closed gate.
	for p.refused.Load() < 2 {
		select {
		case err := <-done:
			t.Fatalf("Start returned before it was told to stop: %v", err)
		case <-ctx.Done():
			t.Fatal("the manager never tried the API server")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if inf.HasSynced() {
		t.Fatal("the Pod informer synced through a closed gate")
	}
	stop()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStoppedBeforeSync) {
			t.Errorf("Start: %v, want %v", err, ErrStoppedBeforeSync)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Start still running 15 s after it was told to stop before its caches synced")
	}
	p.open()
	syncCtx, cancelSync := context.WithTimeout(ctx, 45*time.Second)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Error("the Pod informer did not sync once the API server answered")
	}
}

// gateProxy forwards TCP connections to an address once opened; until
// then it closes each connection it accepts, as an API server that is down.
type gateProxy struct {
	addr    string
	opened  atomic.Bool
	refused atomic.Int32
	mu      sync.Mutex
	conns   []net.Conn // closed at the test's end
}

func newGateProxy(t *testing.T, target string) *gateProxy {
	t.Helper()
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		target = u.Host
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if !p.opened.Load() {
				p.refused.Add(1)
				_ = c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return p
}

func (p *gateProxy) open() { p.opened.Store(true) }
