package daemon

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
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

// TestAPIServerProbesNeedFailuresInARow: the daemon turns not ready only
// after APIServerProbeFailures probes in a row failed — a lost probe
// between answered ones changes nothing (a blip must not flip the node's
// NetworkReady) — and ready again at the first answered probe; its reason
// dates the outage from the first failed probe of the row.
func TestAPIServerProbesNeedFailuresInARow(t *testing.T) {
	t.Parallel()
	var s apiServerState
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	lost := errors.New("context deadline exceeded")
	probe := func(i int, err error) {
		t.Helper()
		changed := s.set(err, t0.Add(time.Duration(i)*APIServerProbePeriod))
		if want := i == APIServerProbeFailures+2 || i == APIServerProbeFailures+3; changed != want {
			t.Errorf("probe %d (%v): changed = %v, want %v", i, err, changed, want)
		}
	}
	probe(0, nil)
	probe(1, lost) // a lost probe between answered ones
	probe(2, nil)
	if err := s.unreachable(t0.Add(3 * APIServerProbePeriod)); err != nil {
		t.Fatalf("after one lost probe: %v, want reachable", err)
	}
	for i := 3; i < 3+APIServerProbeFailures; i++ {
		if err := s.unreachable(t0.Add(time.Duration(i) * APIServerProbePeriod)); err != nil {
			t.Fatalf("after %d failed probes in a row: %v, want still reachable", i-3, err)
		}
		probe(i, lost)
	}
	err := s.unreachable(t0.Add(6 * APIServerProbePeriod))
	if !errors.Is(err, ErrAPIServerUnreachable) || !strings.Contains(err.Error(), "since 2026-11-30T08:00:15Z (15s)") {
		t.Fatalf("after %d failed probes in a row: %v, want unreachable since the first of them (08:00:15, 15 s)", APIServerProbeFailures, err)
	}
	probe(3+APIServerProbeFailures, nil)
	if err := s.unreachable(t0.Add(7 * APIServerProbePeriod)); err != nil {
		t.Fatalf("after an answered probe: %v, want reachable", err)
	}
}

// TestRequestsBeforeTheReconcileAnswerTryAgain: a CNI request that arrives
// before the start-up reconcile ran (a daemon started while the API server
// is down) is answered "try again later" (code 11) once the daemon's
// start-up wait is over, not held until the reconcile can run; one that
// arrives after it proceeds.
func TestRequestsBeforeTheReconcileAnswerTryAgain(t *testing.T) {
	t.Parallel()
	d := &Daemon{synced: func() bool { return false }, reconciled: make(chan struct{}), startupWait: 50 * time.Millisecond,
		metrics: newMetrics(nil), log: logr.Discard()}
	req := &cniapi.Request{Command: cniapi.CmdDel, ContainerID: "0123abcd", IfName: "eth0", Netns: "/var/run/netns/x"}
	start := time.Now()
	err := d.Del(context.Background(), req)
	var ce *cnitypes.Error
	if !errors.As(err, &ce) || ce.Code != cniapi.CodeTryAgainLater || !strings.Contains(ce.Msg, "kuryr-daemon is starting") {
		t.Fatalf("DEL before the reconcile: %v, want code %d, kuryr-daemon is starting", err, cniapi.CodeTryAgainLater)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("DEL before the reconcile answered after %v, want about the start-up wait (50ms)", took)
	}
	close(d.reconciled)
	if err := d.started(context.Background()); err != nil {
		t.Fatalf("after the reconcile: %v", err)
	}
}
