package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/resourceclaim"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/networks"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// One pod, one device, two entry points: a pod that holds a ResourceClaim
// of the DRA driver and also names a nested-dpdk network in its networks
// annotation gets the claimed device for that interface. The plan records
// which claim and port (InterfaceRequest.ResourceClaim); the wiring makes
// and attaches nothing, it reports the port the claim holds; the release
// leaves it alone (it carries the claim's tag, not the pod's): the claim
// gives it back to the pool when it is deallocated.

// Event reasons on a pod about its DPDK devices.
const (
	// reasonInvalidClaim: the pod's claims and its DPDK entries do not
	// match (no claim named among several, a claim on another network).
	reasonInvalidClaim = "InvalidResourceClaim"
	// reasonCapacityUnchecked: a DPDK entry with no claim and no extended
	// resource of the driver: the scheduler did not count DPDK ports.
	reasonCapacityUnchecked = "DPDKNotScheduledByCapacity"
)

// claimArg is the cni-args key an entry names its claim with.
const claimArg = "resourceClaim"

// podClaim is one of the pod's ResourceClaims with devices of our driver.
type podClaim struct {
	// ref is its name in pod.spec.resourceClaims; "" for the claim the
	// scheduler made for an extended resource (KEP-5004).
	ref   string
	claim *resourcev1.ResourceClaim
	devs  []claimedDevice
}

// describe names the claim as the pod's author knows it.
func (c podClaim) describe() string {
	if c.ref == "" {
		return fmt.Sprintf("ResourceClaim %s (made by the scheduler for the pod's extended resource)", c.claim.Name)
	}
	return fmt.Sprintf("pod.spec.resourceClaims %q (ResourceClaim %s)", c.ref, c.claim.Name)
}

// errClaimWait says the pod's claims cannot be read as the scheduler left
// them yet (not in the cache, not allocated or reserved for the pod yet,
// the pools not rebuilt): the plan waits for them.
var errClaimWait = errors.New("waiting for the pod's ResourceClaims")

// dpdkClaims returns the pod's ResourceClaims that are allocated devices
// of our driver and reserved for the pod, in pod.spec.resourceClaims
// order, then the extended resource's. A claim of another driver is
// skipped; one that cannot be judged yet is an errClaimWait.
func (r *PodReconciler) dpdkClaims(ctx context.Context, pod *corev1.Pod) ([]podClaim, error) {
	type ref struct {
		name, claim string
		check       bool
	}
	var refs []ref
	for i := range pod.Spec.ResourceClaims {
		pc := &pod.Spec.ResourceClaims[i]
		name, check, err := resourceclaim.Name(pod, pc)
		switch {
		case errors.Is(err, resourceclaim.ErrClaimNotFound):
			return nil, fmt.Errorf("%w: the ResourceClaim of pod.spec.resourceClaims %q is not made yet", errClaimWait, pc.Name)
		case err != nil || name == nil:
			continue // not needed, or a source this code does not know
		}
		refs = append(refs, ref{name: pc.Name, claim: *name, check: check})
	}
	if st := pod.Status.ExtendedResourceClaimStatus; st != nil && st.ResourceClaimName != "" {
		refs = append(refs, ref{claim: st.ResourceClaimName, check: true})
	}
	var out []podClaim
	for _, rf := range refs {
		c := &resourcev1.ResourceClaim{}
		if err := r.client.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: rf.claim}, c); apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: ResourceClaim %s not found", errClaimWait, rf.claim)
		} else if err != nil {
			return nil, fmt.Errorf("get ResourceClaim %s/%s: %w", pod.Namespace, rf.claim, err)
		}
		if rf.check {
			if err := resourceclaim.IsForPod(pod, c, false); err != nil {
				return nil, fmt.Errorf("%w: %w", errClaimWait, err)
			}
		}
		if c.Status.Allocation == nil || !resourceclaim.IsReservedForPod(pod, c, false) {
			return nil, fmt.Errorf("%w: ResourceClaim %s is not allocated and reserved for the pod yet", errClaimWait, c.Name)
		}
		devs, bad := claimDevices(c)
		if len(bad) > 0 {
			return nil, &networks.SpecError{Object: "ResourceClaim " + c.Name, Field: "status.allocation", Reason: errors.Join(bad...).Error()}
		}
		if len(devs) > 0 {
			out = append(out, podClaim{ref: rf.name, claim: c, devs: devs})
		}
	}
	return out, nil
}

// claimName reads the claim an entry names in its cni-args ("" for none).
func claimName(req v1alpha1.InterfaceRequest) (string, error) {
	if req.CNIArgs == nil || len(req.CNIArgs.Raw) == 0 {
		return "", nil
	}
	var args map[string]json.RawMessage
	if err := json.Unmarshal(req.CNIArgs.Raw, &args); err != nil {
		return "", nil // the plan checked it is an object
	}
	raw, ok := args[claimArg]
	if !ok {
		return "", nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil || name == "" {
		return "", fmt.Errorf("cni-args %s must be the name of one of pod.spec.resourceClaims, a non-empty string; got %s", claimArg, raw)
	}
	return name, nil
}

// claimInterfaces gives each nested-dpdk interface of reqs the device of
// the pod's claim it stands for (ResourceClaim), when the pod holds claims
// of our driver: the claim its entry names in cni-args, else the pod's
// only one. It returns the indexes of the nested-dpdk interfaces that
// stay on the CNI path (the pod holds no such claim). A request that
// cannot be matched (a name that is not a claim of the pod, no name among
// several claims, a device on another network than the entry's, a MAC or
// IPs asked of a claimed device) is a *networks.SpecError; claims or
// pools not ready to be read, an errClaimWait.
func (r *PodReconciler) claimInterfaces(ctx context.Context, pod *corev1.Pod, reqs []v1alpha1.InterfaceRequest) (cniPath []int, err error) {
	var dpdk []int
	for i, req := range reqs {
		if req.Driver == v1alpha1.DriverNestedDPDK {
			dpdk = append(dpdk, i)
		}
	}
	if len(dpdk) == 0 {
		return nil, nil
	}
	if !r.opts.Pools.NestedDPDK.on() {
		// No device of the driver is published: no claim can hold one.
		return dpdk, nil
	}
	claims, err := r.dpdkClaims(ctx, pod)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, i := range dpdk {
		req := &reqs[i]
		bad := func(format string, args ...any) error {
			return &networks.SpecError{Object: fmt.Sprintf("pod annotation %q", v1alpha1.NetworksAnnotation),
				Field: fmt.Sprintf("interface %s (network %s)", req.IfName, req.Network), Reason: fmt.Sprintf(format, args...)}
		}
		name, err := claimName(*req)
		if err != nil {
			return nil, bad("%s", err.Error())
		}
		var pc *podClaim
		switch {
		case name != "":
			j := slices.IndexFunc(claims, func(c podClaim) bool { return c.ref == name })
			if j < 0 {
				if !slices.ContainsFunc(pod.Spec.ResourceClaims, func(c corev1.PodResourceClaim) bool { return c.Name == name }) {
					return nil, bad("cni-args names %s %q, which is not in pod.spec.resourceClaims", claimArg, name)
				}
				return nil, bad("cni-args names %s %q, whose ResourceClaim has no device of driver %s", claimArg, name, draDriver)
			}
			pc = &claims[j]
		case len(claims) == 0:
			cniPath = append(cniPath, i)
			continue
		case len(claims) == 1:
			pc = &claims[0]
		default:
			var names []string
			for _, c := range claims {
				names = append(names, c.describe())
			}
			return nil, bad("the pod holds %d ResourceClaims of driver %s (%s): name one in the entry's cni-args, {%q: \"<name in pod.spec.resourceClaims>\"}",
				len(claims), draDriver, strings.Join(names, ", "), claimArg)
		}
		if req.MAC != "" || len(req.IPs) > 0 {
			return nil, bad("asks for its own MAC or IPs, which the device of %s cannot have (it keeps its port's): drop them or the claim", pc.describe())
		}
		j := slices.IndexFunc(pc.devs, func(d claimedDevice) bool { return !used[d.portID] })
		if j < 0 {
			return nil, bad("every device of %s is another interface's of this pod", pc.describe())
		}
		dev := pc.devs[j]
		if dev.node != pod.Spec.NodeName {
			return nil, bad("device %s of %s is on node %s, not the pod's node %s", dev.name, pc.describe(), dev.node, pod.Spec.NodeName)
		}
		port, err := r.pools.devicePort(dev.portID)
		if err != nil {
			return nil, fmt.Errorf("%w: device %s of %s: %w", errClaimWait, dev.name, pc.describe(), err)
		}
		subnet, err := r.nets.subnet(ctx, req.SubnetID)
		if err != nil {
			return nil, cloudTerminal(err, fmt.Sprintf("subnet %s of interface %s", req.SubnetID, req.IfName))
		}
		if port.NetworkID != subnet.NetworkID {
			return nil, bad("device %s of %s is on Neutron network %s, not on the entry's network %s (subnet %s): ask for a device of that network (a DeviceClass selecting networkID, docs/dra.md) or name another claim",
				dev.name, pc.describe(), port.NetworkID, subnet.NetworkID, req.SubnetID)
		}
		used[dev.portID] = true
		req.ResourceClaim = &v1alpha1.ClaimedDevice{Name: pc.claim.Name, UID: pc.claim.UID, PortID: dev.portID}
	}
	return cniPath, nil
}

// asksThroughDRA says whether a container of pod asks for an extended
// resource of the driver's domain (dpdk.kuryr-dpdk.io/port, the
// DeviceClass's extendedResourceName, or a per-network class's): the
// scheduler counted such a request against the published devices.
func asksThroughDRA(pod *corev1.Pod) bool {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			for _, rl := range []corev1.ResourceList{c.Resources.Limits, c.Resources.Requests} {
				for name := range rl {
					if strings.HasPrefix(string(name), draDriver+"/") {
						return true
					}
				}
			}
		}
	}
	return false
}

// reportUnchecked records, once when the pod is planned, that its DPDK
// interfaces cniPath take the CNI path with no claim and no extended
// resource of the driver: nothing made the scheduler count DPDK ports.
func (r *PodReconciler) reportUnchecked(pod *corev1.Pod, kp *v1alpha1.KuryrPod, reqs []v1alpha1.InterfaceRequest, cniPath []int) {
	if len(cniPath) == 0 || asksThroughDRA(pod) {
		return
	}
	var names []string
	for _, i := range cniPath {
		names = append(names, reqs[i].IfName)
	}
	r.recorder.Eventf(pod, kp, corev1.EventTypeNormal, reasonCapacityUnchecked, "PlanInterfaces",
		"DPDK interfaces %s have no ResourceClaim of driver %s and the pod asks for no %s/* resource: the scheduler placed the pod without counting DPDK ports; their ports are attached now (to be scheduled by capacity, ask through DRA: docs/dra.md)",
		strings.Join(names, ", "), draDriver, draDriver)
}

// devicePort returns the pool port of device portID: an error says why it
// cannot be judged yet (pools not rebuilt, not a port of any DPDK pool).
func (ps *pools) devicePort(portID string) (openstack.Port, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if !ps.loaded {
		return openstack.Port{}, errors.New("the DPDK pools are not rebuilt yet")
	}
	for k, p := range ps.byKey {
		if k.driver != v1alpha1.DriverNestedDPDK {
			continue
		}
		if c, ok := p.inUse[portID]; ok {
			return c.port, nil
		}
		if i := slices.IndexFunc(p.ready, func(w wiring) bool { return w.port.ID == portID }); i >= 0 {
			return p.ready[i].port, nil
		}
		if w, ok := p.warming[portID]; ok {
			return w.port, nil
		}
		if port, ok := p.unwired[portID]; ok {
			return port, nil
		}
	}
	return openstack.Port{}, errors.New("not a port of a DPDK pool (yet)")
}

// heldBy returns pool port portID and its owner when it is in use.
func (ps *pools) heldBy(portID string) (openstack.Port, string, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for k, p := range ps.byKey {
		if c, ok := p.inUse[portID]; ok && k.driver == v1alpha1.DriverNestedDPDK {
			return c.port, c.owner, true
		}
	}
	return openstack.Port{}, "", false
}

// wireClaimed gives interface req the device its claim holds: no port is
// made, tagged or attached; the status describes the claim's port once
// the claim controller has given it to the claim.
func (r *PodReconciler) wireClaimed(ctx context.Context, node nodeInfo, req v1alpha1.InterfaceRequest, entry v1alpha1.InterfaceStatus) (v1alpha1.InterfaceStatus, error) {
	cd := req.ResourceClaim
	want := ownerClaim + string(cd.UID)
	port, owner, ok := r.pools.heldBy(cd.PortID)
	if !ok || owner != want {
		entry.State = v1alpha1.StatePending
		entry.Message = fmt.Sprintf("waiting for device %s%s to be given to ResourceClaim %s", draDevicePrefix, cd.PortID, cd.Name)
		return entry, nil
	}
	st, err := r.describe(ctx, req, wiring{port: port})
	st.State, st.Message = v1alpha1.StatePending, "waiting for the claimed port to become ACTIVE"
	if port.Status == openstack.PortStatusActive && port.DeviceID == node.ServerID {
		st.State, st.Message = v1alpha1.StateActive, ""
	}
	if err != nil {
		st.Message = publicText(err)
	}
	return st, err
}
