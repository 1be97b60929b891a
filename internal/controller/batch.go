package controller

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// batchWindow is how long the first request for a key waits for others
// before its call is made: long enough for the interfaces of one pod,
// wired at once (fanOut), to join. Requests that come while a call for
// their key is in flight wait for it to return instead, and then go
// together at once: under load the batches grow by themselves, and a lone
// pod pays only the window, on its create and on its add_subports (10 ms
// each, before: 20 ms on a lone nested-vlan pod's path).
const batchWindow = time.Millisecond

// maxBatch bounds the requests merged into one cloud call.
const maxBatch = 50

// createCallsPerNetwork is how many bulk port creates per network may be in
// flight at once. Neutron spends about as long per port in a bulk create
// as in a create of one (measured on this machine: 4.7 s for 26 ports, 0.2 s
// for one), on one API worker: a second call lets a second worker take
// the pods that came while the first was in flight. Creates do not share
// state our side must order (each port is its own), unlike a trunk's
// add_subports, which stay one call at a time per trunk.
const createCallsPerNetwork = 2

// portCreates merges the port creates of pods that arrive together, per
// network, into one bulk POST /ports.
type portCreates = batcher[string, openstack.PortSpec, openstack.Port]

func newPortCreates(c openstack.PortCreator) *portCreates {
	return newBatcher(createCallsPerNetwork, func(ctx context.Context, _ string, specs []openstack.PortSpec) ([]openstack.Port, []error) {
		if len(specs) == 1 {
			p, err := c.CreatePort(ctx, specs[0])
			return []openstack.Port{p}, []error{err}
		}
		ps, err := c.CreatePorts(ctx, specs)
		switch {
		case err == nil:
			return ps, make([]error, len(ps))
		case len(ps) == len(specs):
			// Made, but the tags a cloud without tag-on-create needs
			// afterwards were not all written: made again, they would
			// be twice.
			errs := make([]error, len(ps))
			for i := range errs {
				errs[i] = err
			}
			return ps, errs
		}
		return splitOnRefusal(ctx, specs, err, c.CreatePort)
	})
}

// batcher merges concurrent requests for the same key (a trunk, a network)
// into one cloud call: pods that wait for the same trunk share one
// add_subports, pods that arrive together one bulk POST /ports. At most
// parallel calls per key are in flight; what comes while they all are goes
// in the next call, made as soon as one of them returns.
//
// call gets the requests of one batch and answers each: outs and errs have
// len(ins) entries, errs[i] being request i's own error (call maps a
// failure of the whole batch back to the requests, see splitOnRefusal).
type batcher[K comparable, I, O any] struct {
	call     func(ctx context.Context, key K, ins []I) ([]O, []error)
	parallel int

	mu     sync.Mutex
	queues map[K]*batchQueue[I, O]
}

type batchQueue[I, O any] struct {
	runners   int  // goroutines making this key's calls, at most parallel
	gathering bool // one of them waits out batchWindow: a request that comes now joins its call
	waiting   []*batchItem[I, O]
}

type batchItem[I, O any] struct {
	ctx  context.Context
	in   I
	out  O
	err  error
	done chan struct{}
}

func newBatcher[K comparable, I, O any](parallel int, call func(ctx context.Context, key K, ins []I) ([]O, []error)) *batcher[K, I, O] {
	return &batcher[K, I, O]{call: call, parallel: max(parallel, 1), queues: map[K]*batchQueue[I, O]{}}
}

// do adds in to key's next call and returns its answer. A caller whose ctx
// ends stops waiting; the call goes on as long as another request of its
// batch waits for it.
func (b *batcher[K, I, O]) do(ctx context.Context, key K, in I) (O, error) {
	it := &batchItem[I, O]{ctx: ctx, in: in, done: make(chan struct{})}
	b.mu.Lock()
	q := b.queues[key]
	if q == nil {
		q = &batchQueue[I, O]{}
		b.queues[key] = q
	}
	q.waiting = append(q.waiting, it)
	start := !q.gathering && q.runners < b.parallel
	if start {
		q.runners++
		q.gathering = true
	}
	b.mu.Unlock()
	if start {
		go b.run(key, q)
	}
	select {
	case <-it.done:
		return it.out, it.err
	case <-ctx.Done():
		var zero O
		return zero, ctx.Err()
	}
}

// run makes calls for key one after another until nobody waits: the first
// after batchWindow, each next one as soon as the previous returned. Up to
// parallel runs go on at once for a key.
func (b *batcher[K, I, O]) run(key K, q *batchQueue[I, O]) {
	time.Sleep(batchWindow)
	b.mu.Lock()
	q.gathering = false
	b.mu.Unlock()
	for {
		b.mu.Lock()
		var items []*batchItem[I, O]
		rest := q.waiting[:0]
		for _, it := range q.waiting {
			switch {
			case it.ctx.Err() != nil:
				// Its caller has gone: nothing to do for it.
			case len(items) < maxBatch:
				items = append(items, it)
			default:
				rest = append(rest, it)
			}
		}
		q.waiting = rest
		if len(items) == 0 {
			q.runners--
			if q.runners == 0 {
				delete(b.queues, key)
			}
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.exec(key, items)
	}
}

// exec makes one call for items and hands each its answer. The call's
// context lives while any of the items' callers still waits, and carries
// the first one's values (its logger).
func (b *batcher[K, I, O]) exec(key K, items []*batchItem[I, O]) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(items[0].ctx))
	returned := make(chan struct{})
	go func() {
		for _, it := range items {
			select {
			case <-it.ctx.Done():
			case <-returned:
				return
			}
		}
		cancel()
	}()
	ins := make([]I, len(items))
	for i, it := range items {
		ins[i] = it.in
	}
	outs, errs := b.call(ctx, key, ins)
	close(returned)
	cancel()
	for i, it := range items {
		if i < len(outs) {
			it.out = outs[i]
		}
		if i < len(errs) {
			it.err = errs[i]
		}
		close(it.done)
	}
}

// splitOnRefusal answers a batch whose one call failed with err. Neutron
// takes a bulk create or an add_subports whole or not at all, so one bad
// request (an address taken, a port on another trunk, a quota reached)
// refuses them all: when the cloud refused the content (not a transient
// failure, which every request shares and retries), each request is tried
// alone with one, so that it gets its own answer and the good ones go
// through. They go one after another: this is the rare path, and VLAN IDs
// chosen one request at a time cannot collide.
func splitOnRefusal[I, O any](ctx context.Context, ins []I, err error, one func(context.Context, I) (O, error)) ([]O, []error) {
	outs, errs := make([]O, len(ins)), make([]error, len(ins))
	if len(ins) == 1 || openstack.IsRetryable(err, false) || ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		for i := range errs {
			errs[i] = err
		}
		return outs, errs
	}
	for i, in := range ins {
		outs[i], errs[i] = one(ctx, in)
	}
	return outs, errs
}
