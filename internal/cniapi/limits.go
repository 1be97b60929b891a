package cniapi

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// Limits bound what one client of the daemon's socket can hold: time to
// send a request, time to be answered, idle keep-alive connections, and the
// number of CNI requests served at once.
type Limits struct {
	// ReadTimeout bounds reading a request, headers and body, from the
	// moment the connection is accepted (or the previous answer was
	// written); a client that sends nothing is disconnected after it.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its reading to the end
	// of its answer. The handler's context ends a little earlier (a tenth
	// of it, at most 1 s), so that a request cut short is answered with an
	// error, not a closed connection. It must exceed the longest ADD.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle that long.
	IdleTimeout time.Duration
	// MaxRequests is how many CNI requests are served at once; /healthz is
	// not counted.
	MaxRequests int
	// MaxWait is how long a request over MaxRequests waits for a slot
	// before it is answered with CNI code 11 (try again later).
	MaxWait time.Duration
}

// DefaultLimits are the limits of a daemon on a real node: an ADD may wait
// up to the daemon's interfaces timeout (90 s) plus the device timeout
// (30 s), so the write timeout leaves room for both.
func DefaultLimits() Limits {
	return Limits{
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 3 * time.Minute,
		IdleTimeout:  60 * time.Second,
		MaxRequests:  64,
		MaxWait:      30 * time.Second,
	}
}

// AddFlags registers the limits on fs as --cni-*.
func (l *Limits) AddFlags(fs *flag.FlagSet) {
	fs.DurationVar(&l.ReadTimeout, "cni-read-timeout", l.ReadTimeout, "how long a client of the CNI socket has to send its whole request")
	fs.DurationVar(&l.WriteTimeout, "cni-write-timeout", l.WriteTimeout, "how long a CNI request may take from the end of its reading to the end of its answer")
	fs.DurationVar(&l.IdleTimeout, "cni-idle-timeout", l.IdleTimeout, "how long an idle keep-alive connection to the CNI socket stays open")
	fs.IntVar(&l.MaxRequests, "cni-max-requests", l.MaxRequests, "how many CNI requests are served at once")
	fs.DurationVar(&l.MaxWait, "cni-max-wait", l.MaxWait, "how long a request over --cni-max-requests waits for a slot before it is answered try-again (CNI code 11)")
}

// Validate returns every problem at once, each naming its flag.
func (l *Limits) Validate() error {
	var errs []error
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"cni-read-timeout", l.ReadTimeout}, {"cni-write-timeout", l.WriteTimeout}, {"cni-idle-timeout", l.IdleTimeout}} {
		if d.v < 100*time.Millisecond {
			errs = append(errs, fmt.Errorf("--%s: %s must be at least 100ms", d.flag, d.v))
		}
	}
	if l.MaxRequests < 1 {
		errs = append(errs, fmt.Errorf("--cni-max-requests: %d must be at least 1", l.MaxRequests))
	}
	if l.MaxWait < 0 {
		errs = append(errs, fmt.Errorf("--cni-max-wait: %s must not be negative", l.MaxWait))
	}
	return errors.Join(errs...)
}

// handlerTimeout is WriteTimeout less the time kept to write the answer.
func (l Limits) handlerTimeout() time.Duration {
	return l.WriteTimeout - min(l.WriteTimeout/10, time.Second)
}

// acquire takes a request slot, waiting up to MaxWait for one. It returns
// the function that gives the slot back, or a code 11 error when none
// freed in time (or ctx ended first).
func (s *Server) acquire(ctx context.Context) (func(), *types.Error) {
	release := func() { <-s.slots }
	select {
	case s.slots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(s.limits.MaxWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return release, nil
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, types.NewError(CodeTryAgainLater,
		fmt.Sprintf("kuryr-daemon busy: %d CNI requests in progress, none finished within %s", cap(s.slots), s.limits.MaxWait),
		"raise --cni-max-requests if the node really runs that many CNI calls at once")
}
