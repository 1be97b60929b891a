package aio

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// PoolSize sizes a pool as kuryr-controller's pools options do: min,
// max and batch ports.
type PoolSize struct {
	Min, Max, Batch int
}

// PoolSecurityGroup is the security group of the DPDK pools' ports
// (Options.DRA, Options.DPDKPool): a DPDK network whose ports a pool
// should serve names it, and the data-plane subnet.
func (e *Env) PoolSecurityGroup() string { return e.poolSG }

// dpdkPools is kuryr-controller's "pools" setting for DPDK pools of size
// on every node: declared on the data-plane subnet with the pools'
// security group, so made at start, before any pod or claim.
func (e *Env) dpdkPools(size PoolSize) map[string]any {
	return map[string]any{
		"nestedDPDK":         map[string]int{"min": size.Min, "max": size.Max, "batch": size.Batch},
		"nestedDPDKNetworks": []map[string]any{{"subnetID": e.Networks.DataPlane.ID, "securityGroups": []string{e.poolSG}}},
	}
}

// writeDPDKPoolConfig writes the stand-in kuryr-controller's config file
// for Options.DPDKPool (the declared pools are set in the file only) and
// returns its path. The nodes' hot-plug slots are counted, so that no
// pool plans past them.
func (e *Env) writeDPDKPoolConfig() (string, error) {
	conf, err := yaml.Marshal(map[string]any{"pools": e.dpdkPools(e.opts.DPDKPool), "hotplugSlots": NodePCISlots})
	if err != nil {
		return "", err
	}
	path := filepath.Join(e.StateDir, "kuryr-controller.yaml")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		return "", fmt.Errorf("write kuryr-controller's config: %w", err)
	}
	return path, nil
}

// WaitDPDKPools waits (at most timeout) until every node's KuryrNode
// shows its declared DPDK pool (Options.DPDKPool) filled: at least min
// ports ready, none still attaching.
func (e *Env) WaitDPDKPools(ctx context.Context, timeout time.Duration) error {
	want := e.opts.DPDKPool.Min
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, n := range e.Nodes {
			var kn v1alpha1.KuryrNode
			if err := e.Client.Get(ctx, types.NamespacedName{Name: n.Name}, &kn); err != nil {
				last = fmt.Sprintf("KuryrNode %s: %v", n.Name, err)
				return false, nil
			}
			i := slices.IndexFunc(kn.Status.Pools, func(p v1alpha1.NodePool) bool {
				return p.Driver == v1alpha1.DriverNestedDPDK && p.SubnetID == e.Networks.DataPlane.ID
			})
			if i < 0 {
				last = fmt.Sprintf("node %s has no DPDK pool yet", n.Name)
				return false, nil
			}
			if p := kn.Status.Pools[i]; p.Ready < want || p.Warming > 0 {
				last = fmt.Sprintf("node %s's DPDK pool: %d ready, %d attaching, want %d ready (last error %q)", n.Name, p.Ready, p.Warming, want, p.LastError)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("DPDK pools not filled: %s: %w", last, err)
	}
	return nil
}
