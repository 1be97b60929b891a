package daemon

import (
	"context"
	"maps"
	"math/bits"
	"strconv"
	"time"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/ctl"
)

// labelManager is the field manager of the daemon's server-side apply of
// its Node's labels: the labels it applied last and does not apply again
// are removed by the API server.
const labelManager = "kuryr-daemon"

// NodeLabels are the labels (v1alpha1.NodeLabelPrefix) that say what a
// node offers DPDK: its capabilities as `kuryrctl check` reads them, and
// its free hot-plug slots when the controller records them (nil: not).
func NodeLabels(c ctl.Capabilities, slots *v1alpha1.HotplugSlots) map[string]string {
	l := map[string]string{}
	if c.UIO {
		l[v1alpha1.NodeLabelUIO] = "true"
	}
	if c.VFIOUsable() {
		l[v1alpha1.NodeLabelVFIO] = "true"
	}
	switch {
	case c.IOMMUGroups > 0:
		l[v1alpha1.NodeLabelIOMMU] = v1alpha1.NodeIOMMUVirtual
	case c.NoIOMMU:
		l[v1alpha1.NodeLabelIOMMU] = v1alpha1.NodeIOMMUNoIOMMU
	default:
		l[v1alpha1.NodeLabelIOMMU] = v1alpha1.NodeIOMMUNone
	}
	l[v1alpha1.NodeLabelHugepagesFree] = strconv.Itoa(powerOfTwoFloor(c.HugepagesFreeMiB))
	if slots != nil {
		l[v1alpha1.NodeLabelHotplugSlotsFree] = strconv.Itoa(max(slots.Free, 0))
	}
	return l
}

// powerOfTwoFloor is the largest power of two not above n (0 for n < 1).
func powerOfTwoFloor(n int) int {
	if n < 1 {
		return 0
	}
	return 1 << (bits.Len(uint(n)) - 1)
}

// LabelNode keeps this node's capability labels (NodeLabels) on its Node
// until ctx ends: it applies them at start, when the KuryrNode changes
// (free hot-plug slots), and every opts.LabelInterval (free hugepages
// have no notification); an apply is made only when the labels differ
// from the last applied. A failed apply is tried again after 10 s.
func (d *Daemon) LabelNode(ctx context.Context) error {
	tick := time.NewTicker(d.opts.LabelInterval)
	defer tick.Stop()
	var applied map[string]string
	var retry <-chan time.Time
	for {
		d.nodeMu.Lock()
		slots := d.nodeStatus.HotplugSlots.DeepCopy()
		d.nodeMu.Unlock()
		want := NodeLabels(ctl.ReadCapabilities(d.opts.SysfsRoot), slots)
		if applied == nil || !maps.Equal(want, applied) {
			if err := d.applyLabels(ctx, want); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				d.log.Error(err, "Labelling the node with its DPDK capabilities; trying again", "node", d.opts.NodeName)
				retry = time.After(10 * time.Second)
			} else {
				d.log.V(1).Info("Labelled the node with its DPDK capabilities", "node", d.opts.NodeName, "labels", want)
				applied, retry = want, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.labelKick:
		case <-tick.C:
		case <-retry:
		}
	}
}

// applyLabels sets the Node's labels under our prefix to exactly want
// (server-side apply: the ones applied before and not now are removed).
func (d *Daemon) applyLabels(ctx context.Context, want map[string]string) error {
	return d.client.Apply(ctx, corev1ac.Node(d.opts.NodeName).WithLabels(want),
		client.FieldOwner(labelManager), client.ForceOwnership)
}
