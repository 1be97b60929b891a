package bench

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// Subject is a controller under test as a round sees it: the per-pod
// resource it writes (named as the pod, in the pod's namespace) and when
// that resource says the pod's interfaces are ready.
type Subject struct {
	// Kind names the resource in messages, e.g. "KuryrPods".
	Kind string
	// NewList returns an empty list of that resource, to watch and list.
	NewList func() client.ObjectList
	// Ready reports whether obj, an item of that list, shows every
	// interface of its pod ready (the Neutron port ACTIVE).
	Ready func(obj client.Object) bool
	// PortsLeft counts the ports that must be gone from Neutron once a
	// round's pods are deleted, and says what they are; nil when nothing
	// must be gone (a pool keeps released ports).
	PortsLeft func(ctx context.Context) (n int, what string, err error)
	// Warm, when set, waits before every round after the first until the
	// controller's pools are ready for it.
	Warm func(ctx context.Context) error
}

// OursSubject is kuryr-controller: KuryrPods, ready by Ready; released
// ports are those tagged with the cluster ID.
func OursSubject(n *Neutron, clusterID string) Subject {
	return Subject{
		Kind:    "KuryrPods",
		NewList: func() client.ObjectList { return &v1alpha1.KuryrPodList{} },
		Ready: func(obj client.Object) bool {
			kp, ok := obj.(*v1alpha1.KuryrPod)
			return ok && Ready(kp)
		},
		PortsLeft: func(ctx context.Context) (int, string, error) {
			c, err := n.CountPorts(ctx, url.Values{"tags": {"kuryr-cluster=" + clusterID}})
			return c, "ports tagged kuryr-cluster=" + clusterID, err
		},
	}
}

// OursPooledSubject is kuryr-controller with pools on node: as
// OursSubject, but the pool's ports (tagged kuryr-pool=<node>) stay after
// a round; every other port of the cluster must be gone. Before a round it
// waits (at most warmFor) until the node's pools are warm: each with no
// port warming and at least its target ready, as its KuryrNode says.
func OursPooledSubject(n *Neutron, clusterID string, c client.Client, node string, warmFor time.Duration, logf func(string, ...any)) Subject {
	s := OursSubject(n, clusterID)
	s.PortsLeft = func(ctx context.Context) (int, string, error) {
		c, err := n.CountPorts(ctx, url.Values{"tags": {"kuryr-cluster=" + clusterID}, "not-tags-any": {"kuryr-pool=" + node}})
		return c, "ports tagged kuryr-cluster=" + clusterID + " and not kuryr-pool=" + node, err
	}
	s.Warm = func(ctx context.Context) error {
		start := time.Now()
		last := "no KuryrNode"
		for time.Since(start) < warmFor {
			var kn v1alpha1.KuryrNode
			if err := c.Get(ctx, client.ObjectKey{Name: node}, &kn); err == nil {
				last = fmt.Sprintf("%+v", kn.Status.Pools)
				if poolsWarm(kn.Status.Pools) {
					logf("pools of %s warm after %s: %s", node, time.Since(start).Round(time.Millisecond), last)
					return nil
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		logf("pools of %s not warm after %s, round goes on: %s", node, warmFor, last)
		return nil
	}
	return s
}

// poolsWarm says whether there is a pool and every pool has nothing
// warming and at least its target ready.
func poolsWarm(pools []v1alpha1.NodePool) bool {
	for _, p := range pools {
		if p.Warming > 0 || p.Ready < p.Target {
			return false
		}
	}
	return len(pools) > 0
}

// kuryrPortList is kuryr-kubernetes' per-pod resource.
var kuryrPortList = schema.GroupVersionKind{Group: "openstack.org", Version: "v1", Kind: "KuryrPortList"}

// KuryrSubject is kuryr-kubernetes: KuryrPorts (openstack.org/v1), ready
// when status.vifs holds at least one VIF and every one is active (which
// its kuryrport handler writes once the Neutron port is ACTIVE). Without a
// pool its released ports (device_owner compute:kuryr) are deleted.
func KuryrSubject(n *Neutron, pooled bool) Subject {
	s := Subject{
		Kind: "KuryrPorts",
		NewList: func() client.ObjectList {
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(kuryrPortList)
			return l
		},
		Ready: func(obj client.Object) bool {
			u, ok := obj.(*unstructured.Unstructured)
			return ok && KuryrPortReady(u.Object)
		},
	}
	if !pooled {
		s.PortsLeft = func(ctx context.Context) (int, string, error) {
			c, err := n.CountPorts(ctx, url.Values{"device_owner": {KuryrDeviceOwner}})
			return c, "ports with device_owner " + KuryrDeviceOwner, err
		}
	}
	return s
}

// KuryrDeviceOwner is the device_owner of kuryr-kubernetes' nested ports.
const KuryrDeviceOwner = "compute:kuryr"

// KuryrPortReady reads a KuryrPort: status.vifs maps interface names to
// {default, vif}, vif being an oslo versioned object whose fields are
// under "versioned_object.data".
func KuryrPortReady(kp map[string]any) bool {
	vifs, _, _ := unstructured.NestedMap(kp, "status", "vifs")
	if len(vifs) == 0 {
		return false
	}
	for _, v := range vifs {
		entry, ok := v.(map[string]any)
		if !ok {
			return false
		}
		active, _, _ := unstructured.NestedBool(entry, "vif", "versioned_object.data", "active")
		if !active {
			return false
		}
	}
	return true
}
