package manager

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/testenv"
)

// TestStartReturnsWhenStoppedBeforeCacheSync: a manager whose API server
// does not answer (a transport in front of the test's API server that
// fails every request) is told to stop while it waits for its Pod informer
// to sync; Start returns ErrStoppedBeforeSync within seconds.
// (controller-runtime's own Start spins there until the sync.) Let through
// to the API server afterwards, the informer syncs, which also ends the
// stuck manager's spin.
func TestStartReturnsWhenStoppedBeforeCacheSync(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var up atomic.Bool
	var refused atomic.Int32
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return testenv.RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			if !up.Load() {
				refused.Add(1)
				return nil, errors.New("the test's API server is down")
			}
			return rt.RoundTrip(req)
		})
	})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{MapperProvider: RESTMapper,
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
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
	// The informer has started listing, and been refused.
	for refused.Load() < 2 {
		select {
		case err := <-done:
			t.Fatalf("Start returned before it was told to stop: %v", err)
		case <-ctx.Done():
			t.Fatal("the manager never tried the API server")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if inf.HasSynced() {
		t.Fatal("the Pod informer synced while every request failed")
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
	up.Store(true)
	syncCtx, cancelSync := context.WithTimeout(ctx, 45*time.Second)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Error("the Pod informer did not sync once the API server answered")
	}
}
