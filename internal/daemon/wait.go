package daemon

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// waiters wakes the ADDs waiting for a KuryrPod when the informer sees it
// change: no polling. Each key has a channel that is closed (and replaced)
// on every change; a waiter takes the channel before it looks at the
// object, so no change can slip between the look and the wait.
type waiters struct {
	mu sync.Mutex
	ch map[types.NamespacedName]chan struct{}
}

func newWaiters() *waiters { return &waiters{ch: map[types.NamespacedName]chan struct{}{}} }

// changed wakes everyone waiting on key.
func (w *waiters) changed(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.ch[key]; ok {
		close(c)
		delete(w.ch, key)
	}
}

// changedAll wakes every waiter, whatever its key: a change that may
// concern any of them (the node's KuryrNode, which says whose each DPDK
// device is).
func (w *waiters) changedAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, c := range w.ch {
		close(c)
		delete(w.ch, key)
	}
}

// next returns a channel closed at the next change of key.
func (w *waiters) next(key types.NamespacedName) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.ch[key]
	if !ok {
		c = make(chan struct{})
		w.ch[key] = c
	}
	return c
}

// until calls check after each change of key (and once at first) until it
// says done or fails, or ctx ends.
func (w *waiters) until(ctx context.Context, key types.NamespacedName, check func() (bool, error)) error {
	for {
		c := w.next(key)
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func keyOf(namespace, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: name}
}
