package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The daemon serves DEL from its checkpoints alone, but an ADD must record
// what it plugged (the KuryrPod's status, in primary mode the pod's
// network-status): while the API server cannot be reached an ADD would plug
// the interfaces, fail to record them and be undone by the runtime's DEL.
// So the daemon probes the API server and is not ready while it cannot
// reach it: the shim then answers ADD with "try again later" (CNI code 11)
// without plugging anything, and STATUS with code 50; the DaemonSet's
// readiness probe (/readyz) reports the pod not ready. Its liveness probe
// (/healthz, a ping) stays fine: restarting the daemon cannot end an
// outage of the API server, and a daemon started during one cannot serve
// anything until its informers sync.

// APIServerProbePeriod is how often kuryr-daemon probes the API server
// (cmd/kuryr-daemon): the daemon turns not ready after
// APIServerProbeFailures failed probes in a row (within that many periods
// of an outage's start, each probe bounded by the period) and ready again
// within one period of its end.
const APIServerProbePeriod = 5 * time.Second

// APIServerProbeFailures is how many probes in a row must fail before the
// daemon turns not ready, as a kubelet's probe has a failureThreshold: one
// lost probe (a blip of the network or of the API server) does not flip
// the node's NetworkReady, and with it the node's Ready condition.
const APIServerProbeFailures = 3

// ErrAPIServerUnreachable is the reason Ready gives while the last probe of
// the API server failed.
var ErrAPIServerUnreachable = errors.New("kuryr-daemon cannot reach the Kubernetes API server")

// APIServerProbe answers nil when the API server answers (for example GET
// /readyz) and the reason otherwise.
type APIServerProbe func(ctx context.Context) error

// apiServerState is what the probes of the API server found.
type apiServerState struct {
	mu       sync.Mutex
	err      error     // the last probe's failure; nil when it succeeded or none ran
	failures int       // probes failed in a row
	since    time.Time // when the probes began to fail
}

// set records a probe's outcome and says whether it changed the state
// (reachable or not, APIServerProbeFailures failures in a row making it
// unreachable).
func (s *apiServerState) set(err error, now time.Time) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.down()
	if err == nil {
		s.failures = 0
	} else {
		if s.failures == 0 {
			s.since = now
		}
		s.failures++
	}
	s.err = err
	return s.down() != was
}

// down says whether enough probes in a row failed.
func (s *apiServerState) down() bool { return s.failures >= APIServerProbeFailures }

// unreachable is nil while the API server answers (or has missed fewer
// than APIServerProbeFailures probes in a row), else why not.
func (s *apiServerState) unreachable(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.down() {
		return nil
	}
	return fmt.Errorf("%w since %s (%s): %v; ADDs wait until it answers (they could not record the interfaces they plug), DELs are served from the checkpoints",
		ErrAPIServerUnreachable, s.since.UTC().Format(time.RFC3339), now.Sub(s.since).Round(time.Second), s.err)
}

// WatchAPIServer probes the API server every period (each probe bounded by
// the period) until ctx ends, for Ready: APIServerProbeFailures failed
// probes in a row make the daemon not ready, the next successful one ready
// again. Each change is logged
// once. It runs on every replica (a manager runnable without leader
// election) and returns nil when ctx ends.
func (d *Daemon) WatchAPIServer(ctx context.Context, probe APIServerProbe, period time.Duration) error {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, period)
		err := probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if d.api.set(err, time.Now()) {
			if err != nil {
				d.log.Error(err, "Kubernetes API server unreachable: not ready for ADDs until it answers; DELs are still served")
			} else {
				d.log.Info("Kubernetes API server answers again: ready for ADDs")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
