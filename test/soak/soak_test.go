// Package soak is the fault soak: on the all-in-one (test/aio: a real
// kube-apiserver, node VMs as network namespaces with simulated PCI, the
// simulated cloud), pods with a management interface (nested-vlan, or
// nested-macvlan on kernels without 802.1Q) and a DPDK interface are
// created and deleted for KURYR_SOAK_DURATION while the cloud fails 30 %
// of its requests (5xx, 409, lost answers, hangs past the client's
// timeout), kuryr-controller and kuryr-daemons are SIGKILLed, the API
// server is killed and restarted, and a node is deleted with its server.
// Then the faults stop, the pods are deleted, and after a bounded settle an
// audit counts what is left in every layer (aio.Env.Traces). make soak runs
// it for 30 minutes; make test for KURYR_SOAK_DURATION's default here, 2.
package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/testing/netnstest"
	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

// DurationEnv names the soak's length (a Go duration); defaultDuration
// when unset (make soak sets 30m).
const DurationEnv = "KURYR_SOAK_DURATION"

const (
	defaultDuration = 2 * time.Minute
	namespace       = "soak"
	// podsPerNode is the live population the churn keeps on each node.
	podsPerNode = 4
	// readyWithin is every pod's expected outcome: Ready within this long
	// of its creation, unless it was deleted first or its node was.
	readyWithin = 4 * time.Minute
	// settleBound bounds the wait, faults off and pods deleted, for
	// releases in flight and the garbage collector before the audit.
	settleBound = 4 * time.Minute
	// faultRate is the share of cloud requests that fail.
	faultRate = 0.3
	// requestTimeout is kuryr-controller's bound on one cloud request; a
	// hang outlasts it.
	requestTimeout = 5 * time.Second
)

func soakDuration(t *testing.T) time.Duration {
	return envDuration(t, DurationEnv, defaultDuration, 30*time.Second)
}

// envDuration is the Go duration in the environment variable name, def
// when it is unset; the test fails on one shorter than least.
func envDuration(t *testing.T, name string, def, least time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < least {
		t.Fatalf("%s=%q: want a Go duration of at least %s (%v)", name, v, least, err)
	}
	return d
}

// needTime fails the test unless go test's -timeout leaves it need for a
// run of d (from the environment variable name).
func needTime(t *testing.T, need, d time.Duration, name, hint string) {
	if dl, ok := t.Deadline(); ok && time.Until(dl) < need {
		t.Fatalf("go test's -timeout ends in %s, too soon for a run of %s (%s=%s): give -timeout %s or more%s",
			time.Until(dl).Round(time.Second), d, name, os.Getenv(name), need, hint)
	}
}

// startEnv starts the all-in-one and tears it down when the test ends,
// keeping the processes' logs in <temp>/<logs>-<id> if it failed.
func startEnv(ctx context.Context, t *testing.T, opts aio.Options, logs string) *aio.Env {
	env, err := aio.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start the all-in-one: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dst := filepath.Join(os.TempDir(), logs+"-"+env.ID)
			if err := env.SaveLogs(dst); err == nil {
				t.Logf("the processes' logs are kept in %s", dst)
			}
		}
		if err := env.Close(); err != nil {
			t.Errorf("tear down the all-in-one: %v", err)
		}
	})
	return env
}

// TestSoak: for the soak's duration, under faults, kills, an API server
// restart and a node deletion, every pod is Ready within readyWithin of
// its creation (unless deleted first or on the deleted node); each fault
// kind happened; and after the faults stop, the pods go and a bounded
// settle, no layer holds anything of kuryr-dpdk's and no count failed.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED: the soak is not short (-short given)")
	}
	netnstest.RequireRoot(t)
	d := soakDuration(t)
	needTime(t, d+settleBound+3*time.Minute, d, DurationEnv, " (make soak gives 0, none)")
	ctx, cancel := context.WithTimeout(context.Background(), d+settleBound+10*time.Minute)
	defer cancel()
	env := startEnv(ctx, t, aio.Options{Nodes: 3, Log: os.Stderr, ControllerArgs: []string{
		"--os-request-timeout=" + requestTimeout.String(),
		// As short as the settle allows: an orphan is released on its
		// second sighting.
		"--gc-period=30s",
	}}, "kuryr-soak-logs")
	if err := env.CreateNADs(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	s := newSoak(env, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)), t.Logf)
	t.Logf("soak for %s on %d nodes, management driver %s, cloud faults at %.0f %%", d, len(env.Nodes), env.MgmtDriver, faultRate*100)

	runCtx, stop := context.WithTimeout(ctx, d)
	defer stop()
	done := make(chan struct{}, 3)
	for _, loop := range []func(context.Context){s.churn, s.chaos, s.sample} {
		go func() { loop(runCtx); done <- struct{}{} }()
	}
	for range 3 {
		<-done
	}
	s.faultsOff()
	t.Logf("soak ran %s: %s", d, s.summary())

	settled, settleErr := s.settle(ctx, settleBound)
	report := s.audit(settled)
	t.Log("\n" + report.String())
	if settleErr != nil {
		t.Errorf("settle: %v", settleErr)
	}
	for _, f := range s.failures() {
		t.Error(f)
	}
	if !report.clean() {
		t.Errorf("the audit found leftovers or failed counts:\n%s", strings.Join(report.details(), "\n"))
	}
	if err := s.exercised(report); err != nil {
		t.Error(err)
	}
}

// summary is what the soak did, one line.
func (s *soak) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var faults int64
	for _, op := range s.env.Cloud.Operations() {
		faults += s.env.Cloud.FaultCount(op)
	}
	return fmt.Sprintf("%d pods created, %d Ready, %d deleted before Ready, %d on the deleted node; "+
		"%d cloud faults injected; %d controller kills, %d daemon kills, %d API server restarts, %d node deleted",
		len(s.pods), s.count(func(p *podState) bool { return !p.ready.IsZero() }),
		s.count(func(p *podState) bool { return p.ready.IsZero() && !p.deleted.IsZero() }),
		s.count(func(p *podState) bool { return p.lostWithNode }),
		faults, s.kills["controller"], s.kills["daemon"], s.kills["apiserver"], s.kills["node"])
}

func (s *soak) count(f func(*podState) bool) int {
	n := 0
	for _, p := range s.pods {
		if f(p) {
			n++
		}
	}
	return n
}
