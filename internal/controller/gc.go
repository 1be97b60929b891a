package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// GarbageCollector releases ports of this cluster (its name and UID tags,
// in its project) whose pod no longer exists: what a crash between creating
// a port and recording it, or a pod removed while the controller was down,
// left behind. A pod's ports are released only once two rounds in a row
// found them orphaned, so that a pod that one round's listings missed (a
// cache behind, a pod created between the two lists) keeps them. It runs
// once at start and then every period, on the leader only.
//
// Ports of the previous tag schema carry the cluster's name and no UID:
// they may be another cluster's of the same name. The collector adopts
// those whose pod exists here (adds the UID tag) and leaves the others
// alone, logged (docs/controller.md, "Cluster identity").
type GarbageCollector struct {
	r      *PodReconciler
	period time.Duration
	// suspects are the pods the last round found orphaned.
	suspects map[types.UID]bool
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

// Collect runs one round and returns how many pods' ports it released:
// those of pods this round and the previous one found orphaned.
func (g *GarbageCollector) Collect(ctx context.Context) (int, error) {
	if err := g.r.waitIdentity(ctx); err != nil {
		return 0, err
	}
	c := g.r.cluster()
	listed := time.Now()
	ports, err := g.r.cloud.ListPorts(ctx, openstack.PortFilter{Tags: []string{clusterTag(c.name)}, ProjectID: g.r.cloud.ProjectID()})
	if err != nil {
		return 0, fmt.Errorf("list this cluster's ports: %w", err)
	}
	// The pods' own nested-dpdk ports attached to node VMs, as Neutron
	// shows them (the KuryrNodes list them; refreshNodes writes them).
	g.r.attached.sync(slices.DeleteFunc(slices.Clone(ports), func(p openstack.Port) bool { return !c.owns(p) }), listed)
	if len(ports) == 0 {
		g.suspects = nil
		return 0, nil
	}
	live, err := g.liveUIDs(ctx)
	if err != nil {
		return 0, err
	}
	orphans := map[types.UID]bool{}
	var errs []error
	legacyLeft := 0
	for _, p := range ports {
		uid := types.UID(tagValue(p.Tags, tagPrefixPod))
		switch {
		case c.legacy(p) && uid != "" && live[uid]:
			if err := g.adopt(ctx, p); err != nil {
				errs = append(errs, err)
			}
		case c.legacy(p):
			legacyLeft++
		case !c.owns(p):
			// Another cluster's, of the same name.
		case uid != "" && !live[uid]:
			orphans[uid] = true
		}
	}
	if legacyLeft > 0 {
		log.FromContext(ctx).Info("ports tagged with this cluster's name but no cluster UID and no pod of this cluster left alone (docs/controller.md, Cluster identity)",
			"cluster", c.name, "ports", legacyLeft)
	}
	prev := g.suspects
	g.suspects = orphans
	released := 0
	for uid := range orphans {
		if !prev[uid] {
			continue
		}
		if err := g.r.releasePod(ctx, uid, false); err != nil {
			if !errors.Is(err, errDetachPending) {
				errs = append(errs, err)
			}
			continue
		}
		released++
		delete(g.suspects, uid)
		g.r.metrics.gcReleased.Inc()
	}
	return released, errors.Join(errs...)
}

// adopt adds this cluster's UID tag to port p, of the previous tag schema,
// whose pod exists in this cluster (a pod's UID is unique to its cluster).
func (g *GarbageCollector) adopt(ctx context.Context, p openstack.Port) error {
	tags := append(slices.Clone(p.Tags), tagPrefixClusterUID+g.r.opts.ClusterUID)
	if _, err := g.r.cloud.ReplacePortTags(ctx, p.ID, tags); err != nil {
		return fmt.Errorf("adopt port %s of the previous tag schema: %w", p.ID, err)
	}
	return nil
}

// liveUIDs are the pods that exist, and the pods whose KuryrPod still
// exists (their release belongs to the reconciler, which may be waiting for
// the daemon to unplug). The lists are the informer cache's own objects,
// not copies (client.UnsafeDisableDeepCopy: at a thousand pods the copies
// of every Pod and KuryrPod were megabytes made and dropped each round);
// only their UIDs are read, nothing is written.
func (g *GarbageCollector) liveUIDs(ctx context.Context) (map[types.UID]bool, error) {
	live := map[types.UID]bool{}
	var pods corev1.PodList
	if err := g.r.client.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	for _, p := range pods.Items {
		live[p.UID] = true
	}
	var kps v1alpha1.KuryrPodList
	if err := g.r.client.List(ctx, &kps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list KuryrPods: %w", err)
	}
	for _, kp := range kps.Items {
		live[kp.Spec.PodUID] = true
	}
	return live, nil
}
