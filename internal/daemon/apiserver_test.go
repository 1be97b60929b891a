package daemon

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestReadyFollowsTheAPIServer: a started daemon whose probes of the API
// server fail is not ready, with ErrAPIServerUnreachable and the probe's
// error in the reason; once a probe succeeds again it is ready; after ctx
// ends WatchAPIServer returns nil. (The all-in-one's outage test,
// test/soak TestAPIServerOutageOfMinutes, shows it with a real API server
// stopped.)
func TestReadyFollowsTheAPIServer(t *testing.T) {
	t.Parallel()
	d := &Daemon{synced: func() bool { return true }, reconciled: make(chan struct{}), log: logr.Discard()}
	close(d.reconciled)
	var down atomic.Bool
	probe := func(context.Context) error {
		if down.Load() {
			return errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.WatchAPIServer(ctx, probe, 10*time.Millisecond) }()

	until := func(what string, ok func(error) bool) {
		t.Helper()
		var last error
		err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
			last = d.Ready()
			return ok(last), nil
		})
		if err != nil {
			t.Fatalf("%s: Ready() = %v", what, last)
		}
	}
	until("API server answering", func(err error) bool { return err == nil })
	down.Store(true)
	until("API server down", func(err error) bool { return err != nil })
	if err := d.Ready(); !errors.Is(err, ErrAPIServerUnreachable) || !strings.Contains(err.Error(), "connection refused") ||
		!strings.Contains(err.Error(), "DELs are served") {
		t.Errorf("Ready() during the outage = %v; want ErrAPIServerUnreachable with the probe's error and what is still served", err)
	}
	down.Store(false)
	until("API server back", func(err error) bool { return err == nil })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WatchAPIServer after ctx ended: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WatchAPIServer still running 5 s after ctx ended")
	}
}
