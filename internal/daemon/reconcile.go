package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/binding"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
)

// Outcomes of the start-up reconcile, as counted in
// kuryr_daemon_startup_reconcile_total.
const (
	reconcileKept      = "kept"
	reconcilePodGone   = "undone_pod_gone"
	reconcileNetnsGone = "undone_netns_gone"
	reconcileFailed    = "failed"
)

// ReconcileAtStart runs once when the daemon starts, after c (the
// daemon's cache) has synced: every checkpointed attachment whose pod no
// longer exists in the API (by UID, among this node's pods) or whose
// network namespace is gone from this VM (the sandbox was removed or
// recreated, the VM rebooted) is undone: links removed, devices given back
// to their kernel driver, device-info files and checkpoints removed. The
// others are kept. It is what reclaims what a DEL lost while the daemon was
// down (the shim reports such a DEL as a success) on runtimes that never
// send CNI GC.
//
// CNI requests wait until it is done (the daemon is not ready before), so
// none races with it. An attachment that cannot be undone is logged,
// counted and left for a DEL, a GC or the next start; failing to list the
// node's pods is returned (the daemon exits, and is restarted).
func (d *Daemon) ReconcileAtStart(ctx context.Context, c cache.Cache) error {
	if !c.WaitForCacheSync(ctx) {
		return fmt.Errorf("start-up reconcile: the cache of node %s did not sync: %w", d.opts.NodeName, ctx.Err())
	}
	if err := d.reconcile(ctx); err != nil {
		return err
	}
	close(d.reconciled)
	return nil
}

// reconcile is one pass of the start-up reconcile.
func (d *Daemon) reconcile(ctx context.Context) error {
	log := d.log.WithName("reconcile")
	// Records first, pods second: a listed record's pod, if it still
	// exists, is in the pod list.
	recs, err := d.bindings.Records()
	if err != nil {
		// Files that cannot be read at all are left in place (corrupt
		// ones are set aside by the listing); the readable ones are
		// reconciled.
		log.Error(err, "Some checkpoints are unreadable", "dir", d.opts.CheckpointDir)
	}
	var pods corev1.PodList
	if err := d.reader.List(ctx, &pods, client.MatchingFields{"spec.nodeName": d.opts.NodeName}); err != nil {
		return fmt.Errorf("start-up reconcile: list the pods of node %s: %w", d.opts.NodeName, err)
	}
	alive := map[string]bool{}
	for _, p := range pods.Items {
		alive[string(p.UID)] = true
	}
	var undone []checkpoint.Record
	for _, r := range recs {
		outcome := d.stale(r, alive)
		if outcome == reconcileKept {
			d.metrics.reconciled.WithLabelValues(outcome).Inc()
			continue
		}
		if err := d.unplug(ctx, r); err != nil {
			log.Error(err, "Could not undo a stale attachment", "container", r.ContainerID, "ifName", r.IfName, "podUID", r.PodUID, "reason", outcome)
			d.metrics.reconciled.WithLabelValues(reconcileFailed).Inc()
			continue
		}
		log.Info("Undid a stale attachment", "container", r.ContainerID, "ifName", r.IfName, "kind", r.Kind,
			"podUID", r.PodUID, "netns", r.NetNS, "pci", r.PCIAddress, "reason", outcome)
		d.metrics.reconciled.WithLabelValues(outcome).Inc()
		undone = append(undone, r)
	}
	// A pod still there (its sandbox gone) learns that its interfaces are
	// out; failing to tell it does not stop the start.
	if err := d.recordUndone(ctx, undone); err != nil {
		log.Error(err, "Could not record the undone attachments on their KuryrPods")
	}
	return nil
}

// stale says whether a record outlived its pod or its namespace, and
// which. A record that names neither (an older schema's DPDK record) is
// kept: nothing says it is stale.
func (d *Daemon) stale(r checkpoint.Record, alive map[string]bool) string {
	if r.PodUID != "" && !alive[r.PodUID] {
		return reconcilePodGone
	}
	if r.NetNS == "" {
		return reconcileKept
	}
	gone, err := binding.NetnsGone(r.NetNS)
	if err != nil {
		d.log.Error(err, "Cannot tell whether a checkpoint's netns exists; keeping it", "container", r.ContainerID, "ifName", r.IfName)
		return reconcileKept
	}
	if gone {
		return reconcileNetnsGone
	}
	return reconcileKept
}

// StartupWait bounds how long a CNI request waits for the start-up
// reconcile. The reconcile needs the API server (the pods by UID): a daemon
// started during an outage answers "try again later" (code 11) after this
// wait rather than holding the runtime's call until the API server returns.
const StartupWait = 10 * time.Second

// started waits until the start-up reconcile is done, so that no CNI
// request races with it; it gives up after d.startupWait.
func (d *Daemon) started(ctx context.Context) error {
	select {
	case <-d.reconciled:
		return nil
	default:
	}
	t := time.NewTimer(d.startupWait)
	defer t.Stop()
	select {
	case <-d.reconciled:
		return nil
	case <-t.C:
		return errReconciling
	case <-ctx.Done():
		return errors.Join(errReconciling, ctx.Err())
	}
}

var errReconciling = errors.New("kuryr-daemon is starting: reconciling its checkpoints (it needs the API server); try again later")
