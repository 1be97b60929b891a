package openstack

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errPlain = errors.New("bug")

var fast = Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond, Factor: 2, Jitter: 0.5, Attempts: 5}

func TestRetry(t *testing.T) {
	t.Parallel()
	transient := &Error{Op: "x", class: ErrTransient}
	conflict := &Error{Op: "x", class: ErrConflict, Status: 409}
	terminal := &Error{Op: "x", class: ErrTerminal, Status: 400}
	cases := []struct {
		name      string
		errs      []error // what successive calls return; then nil
		opts      []RetryOption
		wantCalls int
		wantErr   error
	}{
		{"success at once", nil, nil, 1, nil},
		{"transient then success", []error{transient, transient}, nil, 3, nil},
		{"terminal stops", []error{terminal, nil}, nil, 1, ErrTerminal},
		{"conflict stops by default", []error{conflict}, nil, 1, ErrConflict},
		{"conflict retried when asked", []error{conflict, conflict}, []RetryOption{RetryOnConflict()}, 3, nil},
		{"bounded", []error{transient, transient, transient, transient, transient, transient}, nil, 5, ErrTransient},
		{"plain error is not retried", []error{errPlain}, nil, 1, errPlain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls, notified := 0, 0
			opts := append(tc.opts, OnRetry(func(int, error) { notified++ }))
			err := Retry(context.Background(), fast, func(context.Context) error {
				calls++
				if calls <= len(tc.errs) {
					return tc.errs[calls-1]
				}
				return nil
			}, opts...)
			if calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			if notified != calls-1 {
				t.Errorf("OnRetry called %d times for %d calls", notified, calls)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Retry(ctx, Backoff{Initial: time.Hour, Attempts: 10}, func(context.Context) error {
		calls++
		cancel()
		return &Error{Op: "x", class: ErrTransient}
	})
	if calls != 1 || !errors.Is(err, context.Canceled) || !errors.Is(err, ErrTransient) {
		t.Errorf("calls %d, error %v", calls, err)
	}
}
