package manager

import (
	"context"
	"errors"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
)

// ErrStoppedBeforeSync is what Start returns when it was told to stop
// before the manager's informer caches had synced.
var ErrStoppedBeforeSync = errors.New("stopped before the informer caches synced " +
	"(the API server did not answer, or this identity may not list or watch what the binary watches)")

// syncRaceGrace is how long Start waits for the manager after a stop that
// came while the caches had not synced, in case they synced at that very
// moment and the manager is on its way to a clean stop.
const syncRaceGrace = 2 * time.Second

// Start runs mgr until ctx ends and returns what the manager's Start
// returned, with one exception. controller-runtime v0.25.2's manager does
// not return when ctx ends before its informer caches have synced (an API
// server that does not answer, a list the identity is denied): it keeps
// waiting for the sync in a loop that spins a whole CPU core
// (kubernetes-sigs/controller-runtime#3440), until the kubelet kills the
// process. None of what the manager runs has started then — it starts
// reconcilers, its other runnables and leader election only once its caches
// synced (what a binary runs beside the manager, as kuryr-daemon's socket,
// is the binary's to stop) — so Start returns ErrStoppedBeforeSync instead,
// leaving the stuck manager to the process's exit. Past the sync, the
// manager's own stop runs as always (bounded by its graceful shutdown
// timeout).
func Start(ctx context.Context, mgr ctrl.Manager) error {
	pastSync := make(startSignal)
	if err := mgr.Add(pastSync); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-pastSync:
		return <-done
	case <-time.After(syncRaceGrace):
		return ErrStoppedBeforeSync
	}
}

// startSignal is a runnable that closes itself when the manager starts
// it. It needs no leader, so the manager starts it with the runnables it
// starts right after its caches synced.
type startSignal chan struct{}

func (s startSignal) Start(context.Context) error { close(s); return nil }

func (startSignal) NeedLeaderElection() bool { return false }
