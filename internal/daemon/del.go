package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// records returns the checkpoints a call covers: the container's, all of
// them for the primary CNI's call, else the one of CNI_IFNAME.
func (d *Daemon) records(req *cniapi.Request) ([]checkpoint.Record, error) {
	all, err := d.bindings.Records()
	if err != nil {
		return nil, cniErr(cniapi.CodeInternal, "read checkpoints in %s: %v", d.opts.CheckpointDir, err)
	}
	var out []checkpoint.Record
	for _, r := range all {
		if r.ContainerID == req.ContainerID && (d.all(req) || r.IfName == req.IfName) {
			out = append(out, r)
		}
	}
	return out, nil
}

// unplug undoes one attachment from its checkpoint alone, through the
// binding driver that wrote it: it works after a restart, with the pod's
// namespace gone, and twice.
func (d *Daemon) unplug(ctx context.Context, r checkpoint.Record) error {
	drv, err := d.bindings.ForRecord(r)
	if err != nil {
		return err
	}
	if err := drv.Detach(ctx, r.ContainerID, r.IfName); err != nil {
		return fmt.Errorf("undo the %s attachment %s: %w", r.Kind, r.Key(), err)
	}
	return nil
}

// recordUnplugged tells the controller, on the KuryrPod of pod uid (key),
// that the interfaces named done are out of the pod (Plugged becomes
// Active, no bound driver): it may release them in the cloud now. An
// interface that another attachment of the same pod still holds (a newer
// sandbox's, when an old one is undone) is left as it is.
func (d *Daemon) recordUnplugged(ctx context.Context, key types.NamespacedName, uid types.UID, done []string) error {
	held := map[string]bool{}
	if uid != "" {
		recs, err := d.bindings.Records()
		if err != nil {
			return fmt.Errorf("record the unplugged interfaces of pod %s: read checkpoints: %w", key, err)
		}
		for _, r := range recs {
			if r.PodUID == string(uid) {
				held[r.IfName] = true
			}
		}
	}
	err := d.updateStatus(ctx, key, uid, func(st *v1alpha1.KuryrPodStatus) {
		changed := false
		for i := range st.Interfaces {
			s := &st.Interfaces[i]
			if slices.Contains(done, s.IfName) && !held[s.IfName] && s.State == v1alpha1.StatePlugged {
				s.State, s.BoundDriver = v1alpha1.StateActive, ""
				changed = true
			}
		}
		if changed {
			// Only then: the summary of a pod whose interfaces failed
			// (rolled back, none Plugged) says why, and stays.
			st.Summary = v1alpha1.InterfacesSummary(st.Interfaces)
		}
	})
	if err != nil {
		return fmt.Errorf("record the unplugged interfaces of pod %s: %w", key, err)
	}
	return nil
}

// recordUndone does recordUnplugged for attachments undone without a DEL
// (GC, the start-up reconcile), whose pods are found by the UID their
// records carry among this node's pods. A pod that is gone, or a record
// without a pod UID, has nothing to tell.
func (d *Daemon) recordUndone(ctx context.Context, undone []checkpoint.Record) error {
	byUID := map[types.UID][]string{}
	for _, r := range undone {
		if r.PodUID != "" {
			byUID[types.UID(r.PodUID)] = append(byUID[types.UID(r.PodUID)], r.IfName)
		}
	}
	if len(byUID) == 0 {
		return nil
	}
	var pods corev1.PodList
	if err := d.reader.List(ctx, &pods, client.MatchingFields{"spec.nodeName": d.opts.NodeName}); err != nil {
		return fmt.Errorf("list the pods of node %s: %w", d.opts.NodeName, err)
	}
	var errs []error
	for _, p := range pods.Items {
		if done := byUID[p.UID]; len(done) > 0 {
			errs = append(errs, d.recordUnplugged(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, p.UID, done))
		}
	}
	return errors.Join(errs...)
}

// Del implements cniapi.Handler. Nothing to do is a success.
func (d *Daemon) Del(ctx context.Context, req *cniapi.Request) (err error) {
	start := time.Now()
	defer func() { d.observe(cniapi.CmdDel, "any", start, err) }()
	if err := d.started(ctx); err != nil {
		return cniErr(cniapi.CodeTryAgainLater, "%v", err)
	}
	recs, err := d.records(req)
	if err != nil {
		return err
	}
	var errs []error
	var done []string
	for _, r := range recs {
		if err := d.unplug(ctx, r); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, r.IfName)
	}
	if len(done) > 0 && req.Args.PodNamespace != "" && req.Args.PodName != "" {
		d.reportUnplugged(ctx, req, done)
	}
	if err := errors.Join(errs...); err != nil {
		return cniErr(cniapi.CodeTryAgainLater, "DEL of container %s: %v", req.ContainerID, err)
	}
	return nil
}

// delReportTimeout bounds DEL's report of what it unplugged.
const delReportTimeout = 10 * time.Second

// reportUnplugged tells the controller that the interfaces done are out of
// the pod (Plugged → Active in the KuryrPod): it may release them in the
// cloud now. A failed report does not fail the DEL, whose work is done: a
// retried DEL finds no checkpoint left and could not report either, and
// while the API server is unreachable (an outage) the runtime's DEL must
// still succeed from the checkpoints alone. The KuryrPod then says Plugged
// until the pod's next ADD records it again or, the pod deleted, the
// controller releases its interfaces after its release grace.
func (d *Daemon) reportUnplugged(ctx context.Context, req *cniapi.Request, done []string) {
	ctx, cancel := context.WithTimeout(ctx, delReportTimeout)
	defer cancel()
	key := types.NamespacedName{Namespace: req.Args.PodNamespace, Name: req.Args.PodName}
	if err := d.recordUnplugged(ctx, key, types.UID(req.Args.PodUID), done); err != nil {
		d.log.Error(err, "DEL done, but the unplugged interfaces not recorded in the KuryrPod", "pod", key,
			"container", req.ContainerID, "interfaces", done)
	}
}

// Check implements cniapi.Handler: every attachment of the call is still as
// plugged, as the KuryrPod and the prevResult (required, CNI 1.1) say, in
// the live namespace and on the PCI bus.
func (d *Daemon) Check(ctx context.Context, req *cniapi.Request) (err error) {
	start := time.Now()
	defer func() { d.observe(cniapi.CmdCheck, "any", start, err) }()
	if err := d.started(ctx); err != nil {
		return cniErr(cniapi.CodeTryAgainLater, "%v", err)
	}
	if req.NetConf.PrevResult == nil {
		return cniErr(cniapi.CodeBadConfig, "CHECK of container %s: no prevResult (CNI 1.1 requires the ADD result)", req.ContainerID)
	}
	recs, err := d.records(req)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return cniErr(cniapi.CodeUnknownContainer, "kuryr-daemon has no attachment of container %s interface %s", req.ContainerID, req.IfName)
	}
	key := types.NamespacedName{Namespace: req.Args.PodNamespace, Name: req.Args.PodName}
	var kp v1alpha1.KuryrPod
	if err := d.client.Get(ctx, key, &kp); err != nil {
		return cniErr(cniapi.CodeInternal, "read KuryrPod %s: %v", key, err)
	}
	for _, r := range recs {
		i := slices.IndexFunc(kp.Spec.Interfaces, func(ir v1alpha1.InterfaceRequest) bool { return ir.IfName == r.IfName })
		st := findStatus(&kp, r.IfName)
		if st == nil || i < 0 {
			return cniErr(cniapi.CodeInternal, "CHECK %s: the KuryrPod no longer lists it", r.IfName)
		}
		br, err := bindingRequest(req, r.NetNS, kp.Spec.Interfaces[i], *st)
		if err != nil {
			return err
		}
		if err := expectPrev(&br, req.NetConf.PrevResult, req.Netns, r.PCIAddress); err != nil {
			return cniErr(cniapi.CodeInternal, "CHECK %s: %v", r.IfName, err)
		}
		drv, err := d.bindings.ForRecord(r)
		if err != nil {
			return cniErr(cniapi.CodeInternal, "CHECK %s: %v", r.IfName, err)
		}
		if err := drv.Check(ctx, br); err != nil {
			return cniErr(cniapi.CodeInternal, "CHECK %s: %v", r.IfName, err)
		}
	}
	return nil
}

// GC implements cniapi.Handler (CNI 1.1): every attachment of the GC's
// network (the configuration's name, recorded in the checkpoint) that the
// runtime no longer lists is undone: devices rebound, links removed,
// records dropped. Attachments of other networks, and records older than
// schema version 3 (no network recorded), are left alone: they are another
// GC's, or the start-up reconcile's.
func (d *Daemon) GC(ctx context.Context, req *cniapi.Request) (err error) {
	start := time.Now()
	defer func() { d.observe(cniapi.CmdGC, "any", start, err) }()
	if err := d.started(ctx); err != nil {
		return cniErr(cniapi.CodeTryAgainLater, "%v", err)
	}
	keep := map[checkpoint.Key]bool{}
	for _, a := range req.NetConf.ValidAttachments {
		keep[checkpoint.Key{ContainerID: a.ContainerID, IfName: a.IfName}] = true
	}
	all, err := d.bindings.Records()
	if err != nil {
		return cniErr(cniapi.CodeInternal, "read checkpoints: %v", err)
	}
	var errs []error
	var undone []checkpoint.Record
	for _, r := range all {
		if r.Network != req.NetConf.Name || keep[r.Key()] || d.keptByPrimary(r, keep) {
			continue
		}
		if err := d.unplug(ctx, r); err != nil {
			errs = append(errs, err)
			continue
		}
		undone = append(undone, r)
	}
	// The pods still there (a sandbox the runtime forgot) learn that their
	// interfaces are out, as after a DEL.
	if err := d.recordUndone(ctx, undone); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return cniErr(cniapi.CodeTryAgainLater, "GC: %v", err)
	}
	return nil
}

// keptByPrimary: in primary mode the runtime knows only eth0; every other
// interface of a container it keeps is kept too.
func (d *Daemon) keptByPrimary(r checkpoint.Record, keep map[checkpoint.Key]bool) bool {
	return d.opts.Primary && keep[checkpoint.Key{ContainerID: r.ContainerID, IfName: "eth0"}]
}
