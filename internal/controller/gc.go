package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// GarbageCollector releases ports tagged with this cluster's ID whose pod no
// longer exists: what a crash between creating a port and recording it, or a
// pod removed while the controller was down, left behind. It runs once at
// start and then every period, on the leader only.
type GarbageCollector struct {
	r      *PodReconciler
	period time.Duration
}

// NewGarbageCollector returns the collector of r's cluster.
func NewGarbageCollector(r *PodReconciler) *GarbageCollector {
	return &GarbageCollector{r: r, period: r.opts.GCPeriod.Duration}
}

var _ manager.LeaderElectionRunnable = (*GarbageCollector)(nil)

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (g *GarbageCollector) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable.
func (g *GarbageCollector) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("gc")
	t := time.NewTicker(g.period)
	defer t.Stop()
	for {
		n, err := g.Collect(ctx)
		if rerr := g.r.refreshNodes(ctx); rerr != nil {
			logger.Error(rerr, "refresh KuryrNodes")
		}
		if err != nil {
			logger.Error(err, "garbage collection incomplete", "released", n)
		} else if n > 0 {
			logger.Info("released ports of vanished pods", "released", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Collect runs one round and returns how many pods' ports it released.
func (g *GarbageCollector) Collect(ctx context.Context) (int, error) {
	ports, err := g.r.cloud.ListPorts(ctx, openstack.PortFilter{Tags: []string{clusterTag(g.r.opts.ClusterID)}})
	if err != nil {
		return 0, fmt.Errorf("list this cluster's ports: %w", err)
	}
	if len(ports) == 0 {
		return 0, nil
	}
	live, err := g.liveUIDs(ctx)
	if err != nil {
		return 0, err
	}
	orphans := map[types.UID]bool{}
	for _, p := range ports {
		uid := types.UID(tagValue(p.Tags, tagPrefixPod))
		if uid != "" && !live[uid] {
			orphans[uid] = true
		}
	}
	released := 0
	var errs []error
	for uid := range orphans {
		if err := g.r.releasePod(ctx, uid, false); err != nil {
			if !errors.Is(err, errDetachPending) {
				errs = append(errs, err)
			}
			continue
		}
		released++
		g.r.metrics.gcReleased.Inc()
	}
	return released, errors.Join(errs...)
}

// liveUIDs are the pods that exist, and the pods whose KuryrPod still
// exists (their release belongs to the reconciler, which may be waiting for
// the daemon to unplug).
func (g *GarbageCollector) liveUIDs(ctx context.Context) (map[types.UID]bool, error) {
	live := map[types.UID]bool{}
	var pods corev1.PodList
	if err := g.r.client.List(ctx, &pods); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	for _, p := range pods.Items {
		live[p.UID] = true
	}
	var kps v1alpha1.KuryrPodList
	if err := g.r.client.List(ctx, &kps); err != nil {
		return nil, fmt.Errorf("list KuryrPods: %w", err)
	}
	for _, kp := range kps.Items {
		live[kp.Spec.PodUID] = true
	}
	return live, nil
}
