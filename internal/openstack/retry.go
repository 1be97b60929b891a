package openstack

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff bounds a retry loop: at most Attempts calls, waits growing from
// Initial by Factor up to Max, each spread by ±Jitter (a fraction).
type Backoff struct {
	Initial  time.Duration
	Max      time.Duration
	Factor   float64
	Jitter   float64
	Attempts int
}

// DefaultBackoff suits controller calls: 8 attempts over about 10 s.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 3 * time.Second, Factor: 2, Jitter: 0.2, Attempts: 8}

type retryOptions struct {
	conflict bool
	notify   func(attempt int, err error)
}

// RetryOption changes what Retry retries.
type RetryOption func(*retryOptions)

// RetryOnConflict makes Retry also retry ErrConflict (409/412): for calls
// that re-read the state on each attempt, e.g. a revision-checked update
// or picking a VLAN ID again.
func RetryOnConflict() RetryOption { return func(o *retryOptions) { o.conflict = true } }

// OnRetry calls f before each retry with the attempt that failed (from 1)
// and its error, e.g. to log or count.
func OnRetry(f func(attempt int, err error)) RetryOption {
	return func(o *retryOptions) { o.notify = f }
}

// Retry calls fn until it succeeds, fails with an error that is not
// retryable (only ErrTransient is, plus ErrConflict with RetryOnConflict),
// the attempts run out or ctx ends. The error returned is fn's last, so
// errors.Is works on it.
func Retry(ctx context.Context, b Backoff, fn func(context.Context) error, opts ...RetryOption) error {
	var o retryOptions
	for _, opt := range opts {
		opt(&o)
	}
	if b.Attempts <= 0 {
		b.Attempts = 1
	}
	if b.Factor < 1 {
		b.Factor = 1
	}
	wait := b.Initial
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if !IsRetryable(err, o.conflict) {
			return err
		}
		if attempt >= b.Attempts {
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		if o.notify != nil {
			o.notify(attempt, err)
		}
		d := wait
		if b.Jitter > 0 {
			d = time.Duration(float64(d) * (1 + b.Jitter*(2*rand.Float64()-1)))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("retry stopped after %d attempts: %w (last error: %w)", attempt, ctx.Err(), err)
		case <-t.C:
		}
		wait = time.Duration(float64(wait) * b.Factor)
		if b.Max > 0 && wait > b.Max {
			wait = b.Max
		}
	}
}
