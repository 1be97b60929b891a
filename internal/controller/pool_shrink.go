package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// shrink brings pool key down to its max when it holds more idle ports
// than that (its max was lowered: in the options before a restart, or by
// the node's annotation at run time). Only ready ports go: never one a
// consumer holds or is being given (in use, unsure), nor one being wired
// or given back and not checked yet (warming, unwired), which a later
// round finds ready if it is still past the max. A nested-dpdk port that
// a ResourceClaim's allocation names is kept: its claim takes it next.
//
// A ready port moves to leaving under the pools' lock, so no take or
// claim can have it, and is released like any port (off the trunk or the
// VM's allowed address pairs, or detached by Nova; then deleted). One the
// cloud has not let go of yet (a detach under way, an error) stays
// leaving and is released again next round; after a restart the rebuild
// finds it idle, and it is released again once ready, if still past the
// max.
func (ps *pools) shrink(ctx context.Context, key poolKey) error {
	var claimed map[string]bool
	if key.driver == v1alpha1.DriverNestedDPDK {
		ps.mu.Lock()
		p := ps.byKey[key]
		past := p != nil && p.size.on() && p.idle() > p.size.Max
		ps.mu.Unlock()
		if past {
			var err error
			if claimed, err = ps.allocatedPorts(ctx); err != nil {
				return fmt.Errorf("shrink the DPDK pool of node %s on subnet %s: %w", key.node, key.subnetID, err)
			}
		}
	}
	ps.mu.Lock()
	p := ps.byKey[key]
	if p == nil || !p.size.on() {
		ps.mu.Unlock()
		return nil
	}
	for excess := p.idle() - p.size.Max; excess > 0; excess-- {
		// The oldest ready port first (takes hand out the newest).
		i := slices.IndexFunc(p.ready, func(w wiring) bool { return !claimed[w.port.ID] })
		if i < 0 {
			break
		}
		port := p.ready[i].port
		p.ready = slices.Delete(p.ready, i, i+1)
		p.leaving[port.ID] = port
	}
	todo := make([]openstack.Port, 0, len(p.leaving))
	for _, port := range p.leaving {
		todo = append(todo, port)
	}
	limit := p.size.Max
	ps.mu.Unlock()

	var errs []error
	for _, port := range todo {
		err := ps.r.releasePort(ctx, port)
		switch {
		case errors.Is(err, errDetachPending):
		case err != nil:
			errs = append(errs, fmt.Errorf("release port %s of the pool of node %s past its max %d: %w", port.ID, key.node, limit, err))
		default:
			log.FromContext(ctx).Info("pool port released: the pool was past its max", "node", key.node, "driver", key.driver, "portID", port.ID, "max", limit)
			ps.mu.Lock()
			p.forget(port.ID)
			p.deleted[port.ID] = true
			ps.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}
