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

// declaredPool is one pool declared on every node: its driver and subnet.
type declaredPool struct {
	driver   v1alpha1.Driver
	subnetID string
}

// declaredPools are the pools kuryr-controller declares on every node:
// with Options.DPDKPool the DPDK pool on the data-plane subnet, with
// Options.PodPools too the MgmtDriver pools of eth0's pod subnet and of
// the management subnet. DRA declares the DPDK pool alone.
func (e *Env) declaredPools() []declaredPool {
	out := []declaredPool{{v1alpha1.DriverNestedDPDK, e.Networks.DataPlane.ID}}
	if e.opts.PodPools {
		out = append(out, declaredPool{e.MgmtDriver, e.Networks.Pod.ID}, declaredPool{e.MgmtDriver, e.Networks.Management.ID})
	}
	return out
}

// poolSettings is kuryr-controller's "pools" setting for pools of size on
// every node (declaredPools), so made at start, before any pod or claim:
// the DPDK network names the pools' security group; eth0's and the
// management network name none, so get podSecurityGroups (set to the same
// group where these pools are on), as a pod's interface on them does.
func (e *Env) poolSettings(size PoolSize) map[string]any {
	sz := map[string]int{"min": size.Min, "max": size.Max, "batch": size.Batch}
	out := map[string]any{
		"nestedDPDK":         sz,
		"nestedDPDKNetworks": []map[string]any{{"subnetID": e.Networks.DataPlane.ID, "securityGroups": []string{e.poolSG}}},
	}
	if e.opts.PodPools {
		field := "nestedVLAN"
		if e.MgmtDriver == v1alpha1.DriverNestedMACVLAN {
			field = "nestedMACVLAN"
		}
		out[field] = sz
		out[field+"Networks"] = []map[string]any{{"subnetID": e.Networks.Pod.ID}, {"subnetID": e.Networks.Management.ID}}
	}
	return out
}

// writePoolConfig writes the stand-in kuryr-controller's config file for
// Options.DPDKPool (the declared pools are set in the file only) and
// returns its path. The nodes' hot-plug slots are counted, so that no
// pool plans past them.
func (e *Env) writePoolConfig() (string, error) {
	settings := map[string]any{"pools": e.poolSettings(e.opts.DPDKPool), "hotplugSlots": NodePCISlots}
	if e.opts.PodPools {
		settings["podSecurityGroups"] = []string{e.poolSG}
	}
	conf, err := yaml.Marshal(settings)
	if err != nil {
		return "", err
	}
	path := filepath.Join(e.StateDir, "kuryr-controller.yaml")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		return "", fmt.Errorf("write kuryr-controller's config: %w", err)
	}
	return path, nil
}

// WaitPools waits (at most timeout) until every node's KuryrNode shows
// each of its declared pools (Options.DPDKPool, Options.PodPools) filled:
// at least min ports ready, none still being wired.
func (e *Env) WaitPools(ctx context.Context, timeout time.Duration) error {
	want := e.opts.DPDKPool.Min
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, n := range e.Nodes {
			var kn v1alpha1.KuryrNode
			if err := e.Client.Get(ctx, types.NamespacedName{Name: n.Name}, &kn); err != nil {
				last = fmt.Sprintf("KuryrNode %s: %v", n.Name, err)
				return false, nil
			}
			for _, d := range e.declaredPools() {
				i := slices.IndexFunc(kn.Status.Pools, func(p v1alpha1.NodePool) bool {
					return p.Driver == d.driver && p.SubnetID == d.subnetID
				})
				if i < 0 {
					last = fmt.Sprintf("node %s has no %s pool on subnet %s yet", n.Name, d.driver, d.subnetID)
					return false, nil
				}
				if p := kn.Status.Pools[i]; p.Ready < want || p.Warming > 0 {
					last = fmt.Sprintf("node %s's %s pool on subnet %s: %d ready, %d being wired, want %d ready (last error %q)",
						n.Name, d.driver, d.subnetID, p.Ready, p.Warming, want, p.LastError)
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("pools not filled: %s: %w", last, err)
	}
	return nil
}
