package dra

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// nodeReader holds the latest copy of the node's own KuryrNode, from an
// informer restricted to it by name, and tells waiters of every change.
type nodeReader struct {
	mu      sync.Mutex
	node    *v1alpha1.KuryrNode // nil: not seen, or deleted
	changed chan struct{}       // closed and replaced on every change
	notify  func()              // told of every change (republish)
}

func newNodeReader(notify func()) *nodeReader {
	return &nodeReader{changed: make(chan struct{}), notify: notify}
}

// snapshot returns the node as last seen and a channel closed at the next
// change. Take both at once, then look: no change is missed.
func (r *nodeReader) snapshot() (*v1alpha1.KuryrNode, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node, r.changed
}

func (r *nodeReader) set(n *v1alpha1.KuryrNode) {
	r.mu.Lock()
	r.node = n
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	r.notify()
}

// run watches the KuryrNode named node until ctx ends. It returns once the
// informer has synced (or failed to), leaving the watch running. With
// shared (the daemon's cache, already watching the node's KuryrNode) it
// adds its handler there; otherwise it makes and starts a cache of its own.
func (r *nodeReader) run(ctx context.Context, shared cache.Informers, cfg *rest.Config, scheme *runtime.Scheme, node string) error {
	c := shared
	var own cache.Cache
	if c == nil {
		var err error
		own, err = cache.New(cfg, cache.Options{Scheme: scheme, ByObject: map[client.Object]cache.ByObject{
			&v1alpha1.KuryrNode{}: {Field: fields.OneTermEqualSelector("metadata.name", node)},
		}})
		if err != nil {
			return fmt.Errorf("KuryrNode cache: %w", err)
		}
		c = own
	}
	inf, err := c.GetInformer(ctx, &v1alpha1.KuryrNode{})
	if err != nil {
		return fmt.Errorf("KuryrNode informer: %w", err)
	}
	seen := func(obj any) {
		if n, ok := obj.(*v1alpha1.KuryrNode); ok && n.Name == node {
			r.set(n.DeepCopy())
		}
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    seen,
		UpdateFunc: func(_, n any) { seen(n) },
		DeleteFunc: func(any) { r.set(nil) },
	})
	if err != nil {
		return fmt.Errorf("watch KuryrNode %s: %w", node, err)
	}
	if own != nil {
		go func() { _ = own.Start(ctx) }()
	}
	// The handler has been told of the KuryrNode as listed (a shared
	// informer replays what it holds to a handler added late).
	if !toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return fmt.Errorf("KuryrNode %s: informer did not sync: %w", node, context.Cause(ctx))
	}
	return nil
}
