package controller

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// claimPool starts a controller on a dpdkFixture whose nested-dpdk pools
// are sized size, has a first pod make the node's pool (and take a port of
// it), and waits until ready ports are Ready.
func claimPool(t *testing.T, size PoolSize, ready int) (*fixture, string) {
	t.Helper()
	f, node := dpdkFixture(t, size, nil)
	f.startController()
	f.createPod("first", node, "dataplane")
	f.waitReady("first")
	f.waitPoolReady(node, ready)
	return f, node
}

// createClaimPod creates a pod on node that holds the ResourceClaims
// claims (pod.spec.resourceClaims name -> ResourceClaim name) and names
// networks in its networks annotation.
func (f *fixture) createClaimPod(name, node, networks string, claims map[string]string) *corev1.Pod {
	f.t.Helper()
	p := &corev1.Pod{}
	p.Name, p.Namespace = name, f.ns
	p.Annotations = map[string]string{v1alpha1.NetworksAnnotation: networks}
	p.Spec.NodeName = node
	p.Spec.Containers = []corev1.Container{{Name: "vnf", Image: "vnf:1"}}
	for ref, claim := range claims {
		p.Spec.ResourceClaims = append(p.Spec.ResourceClaims, corev1.PodResourceClaim{Name: ref, ResourceClaimName: &claim})
		p.Spec.Containers[0].Resources.Claims = append(p.Spec.Containers[0].Resources.Claims, corev1.ResourceClaim{Name: ref})
	}
	slices.SortFunc(p.Spec.ResourceClaims, func(a, b corev1.PodResourceClaim) int { return strings.Compare(a.Name, b.Name) })
	must(f.t, f.c.Create(f.ctx, p))
	return p
}

// reserve writes claim c's allocation of device port-<portID> of node's
// pool and its reservation for pod, as the scheduler does before it binds
// the pod.
func (f *fixture) reserve(c *resourcev1.ResourceClaim, node, portID string, pod *corev1.Pod) {
	f.t.Helper()
	f.allocate(c, node, portID)
	c.Status.ReservedFor = []resourcev1.ResourceClaimConsumerReference{{Resource: "pods", Name: pod.Name, UID: pod.UID}}
	must(f.t, f.c.Status().Update(f.ctx, c))
}

// planRefused waits until pod's KuryrPod says SpecValid=False with reason
// and a message holding every one of want, and an Event on the pod says
// the same.
func (f *fixture) planRefused(pod, reason string, want ...string) {
	f.t.Helper()
	has := func(s string) bool {
		return !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(s, w) })
	}
	f.eventually(20*time.Second, pod+" refused with "+reason, func() (bool, string) {
		kp, err := f.kuryrPod(pod)
		if err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(kp.Status.Conditions, v1alpha1.ConditionSpecValid)
		if c == nil || c.Status != "False" || c.Reason != reason || !has(c.Message) {
			return false, fmt.Sprintf("conditions %+v", kp.Status.Conditions)
		}
		evs := f.events(pod)
		return slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, reason+":") && has(e) }), fmt.Sprint(evs)
	})
}

// TestDPDKPodGetsItsClaimedDevice: a pod holding a ResourceClaim of the
// DRA driver (allocated a Ready pool device and reserved for the pod, as
// the scheduler writes it) that also names the nested-dpdk network gets
// that device for the interface: the KuryrPod records the claim and its
// port, the interface is Active on the claimed port with its MAC, and no
// port is made, tagged for the pod or attached for it. The plan waits
// while the claim is not reserved for the pod yet. Deleting the pod leaves
// the port the claim's, attached.
func TestDPDKPodGetsItsClaimedDevice(t *testing.T) {
	// Min 1, batch 3: two stay ready, and the claim's take leaves the
	// pool at its min: no refill.
	f, node := claimPool(t, PoolSize{Min: 1, Max: 4, Batch: 3}, 2)
	dev := f.readyPortIDs(node)[0]
	claim := f.newClaim("port")

	pod := f.createClaimPod("claimed", node, "dataplane", map[string]string{"dpdk": "port"})
	time.Sleep(time.Second)
	if _, err := f.kuryrPod("claimed"); err == nil {
		t.Fatal("the pod was planned before its claim was allocated and reserved for it")
	}
	counts := f.sim.Counts()
	f.reserve(claim, node, dev, pod)
	kp := f.waitReady("claimed")
	want := v1alpha1.ClaimedDevice{Name: "port", UID: claim.UID, PortID: dev}
	if got := kp.Spec.Interfaces[0].ResourceClaim; got == nil || *got != want {
		t.Fatalf("spec.interfaces[0].resourceClaim %+v, want %+v", got, want)
	}
	port, _ := f.sim.Port(dev)
	st := kp.Status.Interfaces[0]
	if st.PortID != dev || st.MAC != port.MACAddress || st.State != v1alpha1.StateActive || len(st.IPs) != 1 {
		t.Fatalf("interface %+v, want Active on claimed port %s (MAC %s, its IP)", st, dev, port.MACAddress)
	}
	if tagValue(port.Tags, tagPrefixPod) != "" || tagValue(port.Tags, tagPrefixClaim) != string(claim.UID) || !f.attached(node, dev) {
		t.Fatalf("claimed port %s: tags %v, attached %v; want the claim's tag only, attached", dev, port.Tags, f.attached(node, dev))
	}
	since := countsSince(counts, f.sim.Counts())
	if since["neutron.ports.create"] != 0 || since["nova.interfaces.attach"] != 0 {
		t.Fatalf("the claimed pod's path made ports or attaches: %v", since)
	}
	for id, p := range f.poolPorts() {
		if tagValue(p.Tags, tagPrefixPod) == string(pod.UID) {
			t.Fatalf("pool port %s was given to the pod too: %v", id, p.Tags)
		}
	}
	if evs := f.events("claimed"); slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, reasonCapacityUnchecked+":") }) {
		t.Fatalf("a pod with a claim got %s: %v", reasonCapacityUnchecked, evs)
	}

	f.deletePod("claimed")
	f.waitGone("claimed")
	if p, ok := f.sim.Port(dev); !ok || tagValue(p.Tags, tagPrefixClaim) != string(claim.UID) || !f.attached(node, dev) {
		t.Fatalf("after the pod went, claimed port %s: exists %v, tags %v, attached %v", dev, ok, p.Tags, f.attached(node, dev))
	}
	if d := countsSince(counts, f.sim.Counts()); d["neutron.ports.delete"] != 0 || d["nova.interfaces.detach"] != 0 {
		t.Fatalf("the pod's release detached or deleted ports: %v", d)
	}
}

// TestDPDKClaimEntryRefused: entries that cannot take a claimed device are
// refused at the plan (SpecValid=False, reason InvalidResourceClaim, an
// Event on the pod; the daemon's ADD answers code 7 with it): a claim whose
// device is on another network than the entry's, naming both networks;
// two claims and no name in cni-args; a name that is not a claim of the
// pod. Naming one of two claims in cni-args gets that claim's device.
func TestDPDKClaimEntryRefused(t *testing.T) {
	f, node := claimPool(t, PoolSize{Min: 1, Max: 6, Batch: 4}, 3)
	f.createNAD("mgmt-dpdk", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"mgmt-dpdk","type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q}`, f.mgmtNet.ID), nil)
	devs := f.readyPortIDs(node)
	claims := map[string]*resourcev1.ResourceClaim{}
	for _, n := range []string{"a", "b", "c"} {
		claims[n] = f.newClaim(n)
	}

	other := f.createClaimPod("other-net", node, "mgmt-dpdk", map[string]string{"dpdk": "a"})
	f.reserve(claims["a"], node, devs[0], other)
	f.planRefused("other-net", reasonInvalidClaim, draDevicePrefix+devs[0], f.dpNet.NetworkID, f.mgmtNet.NetworkID, f.mgmtNet.ID)

	two := f.createClaimPod("two", node, "dataplane", map[string]string{"x": "b", "y": "c"})
	f.reserve(claims["b"], node, devs[1], two)
	f.reserve(claims["c"], node, devs[2], two)
	f.planRefused("two", reasonInvalidClaim, "holds 2 ResourceClaims", `"x"`, `"y"`, `{"resourceClaim": "<name in pod.spec.resourceClaims>"}`)

	f.createClaimPod("stranger", node, `[{"name":"dataplane","cni-args":{"resourceClaim":"z"}}]`, nil)
	f.planRefused("stranger", reasonInvalidClaim, `"z"`, "not in pod.spec.resourceClaims")

	// Naming one of the two: a pod of its own holds them now.
	f.deletePod("two")
	f.waitGone("two")
	named := f.createClaimPod("named", node, `[{"name":"dataplane","cni-args":{"resourceClaim":"y"}}]`, map[string]string{"x": "b", "y": "c"})
	f.reserve(claims["b"], node, devs[1], named)
	f.reserve(claims["c"], node, devs[2], named)
	kp := f.waitReady("named")
	if got := kp.Status.Interfaces[0].PortID; got != devs[2] {
		t.Fatalf("the entry naming claim y got port %s, want claim c's %s", got, devs[2])
	}
}

// TestDPDKEntryWithoutClaimGetsEvent: a nested-dpdk entry of a pod with
// no claim and no extended resource of the driver is served on the CNI
// path and gets a DPDKNotScheduledByCapacity Event; a pod whose container
// asks for dpdk.kuryr-dpdk.io/port (the DeviceClass's extended resource)
// does not.
func TestDPDKEntryWithoutClaimGetsEvent(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 1, Max: 2, Batch: 1}, nil)
	f.startController()
	f.createPod("plain", node, "dataplane")
	f.waitReady("plain")
	f.eventually(20*time.Second, "the "+reasonCapacityUnchecked+" Event", func() (bool, string) {
		evs := f.events("plain")
		return slices.ContainsFunc(evs, func(e string) bool {
			return strings.HasPrefix(e, reasonCapacityUnchecked+":") && strings.Contains(e, "net1") && strings.Contains(e, "without counting DPDK ports")
		}), fmt.Sprint(evs)
	})

	p := &corev1.Pod{}
	p.Name, p.Namespace = "counted", f.ns
	p.Annotations = map[string]string{v1alpha1.NetworksAnnotation: "dataplane"}
	p.Spec.NodeName = node
	one := resource.MustParse("1")
	p.Spec.Containers = []corev1.Container{{Name: "vnf", Image: "vnf:1", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{draDriver + "/port": one}, Requests: corev1.ResourceList{draDriver + "/port": one},
	}}}
	must(t, f.c.Create(f.ctx, p))
	f.waitReady("counted")
	time.Sleep(500 * time.Millisecond)
	if evs := f.events("counted"); slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, reasonCapacityUnchecked+":") }) {
		t.Fatalf("a pod asking for %s/port got %s: %v", draDriver, reasonCapacityUnchecked, evs)
	}
}

// TestDPDKExtendedResourceClaim: a pod that asks for
// dpdk.kuryr-dpdk.io/port in its container's resources (KEP-5004) and
// names the DPDK network gets the device of the claim the scheduler made
// for it (pod.status.extendedResourceClaimStatus, a claim the pod
// controls), written and bound here as the scheduler does: no port made
// or attached for the interface, no DPDKNotScheduledByCapacity Event.
func TestDPDKExtendedResourceClaim(t *testing.T) {
	f, node := claimPool(t, PoolSize{Min: 1, Max: 4, Batch: 3}, 2)
	dev := f.readyPortIDs(node)[0]

	one := resource.MustParse("1")
	pod := &corev1.Pod{}
	pod.Name, pod.Namespace = "ext", f.ns
	pod.Annotations = map[string]string{v1alpha1.NetworksAnnotation: "dataplane"}
	pod.Spec.Containers = []corev1.Container{{Name: "vnf", Image: "vnf:1", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{draDriver + "/port": one}, Requests: corev1.ResourceList{draDriver + "/port": one},
	}}}
	must(t, f.c.Create(f.ctx, pod))
	yes := true
	claim := &resourcev1.ResourceClaim{}
	claim.Name, claim.Namespace = "ext-extended-resources", f.ns
	claim.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, Controller: &yes}}
	claim.Spec.Devices.Requests = []resourcev1.DeviceRequest{{Name: "dpdk", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: draDriver}}}
	must(t, f.c.Create(f.ctx, claim))
	counts := f.sim.Counts()
	f.reserve(claim, node, dev, pod)
	pod.Status.ExtendedResourceClaimStatus = &corev1.PodExtendedResourceClaimStatus{ResourceClaimName: claim.Name,
		RequestMappings: []corev1.ContainerExtendedResourceRequest{{ContainerName: "vnf", ResourceName: draDriver + "/port", RequestName: "dpdk"}}}
	must(t, f.c.Status().Update(f.ctx, pod))
	must(t, f.c.SubResource("binding").Create(f.ctx, pod, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: f.ns}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}))

	kp := f.waitReady("ext")
	if c := kp.Spec.Interfaces[0].ResourceClaim; c == nil || c.Name != claim.Name || c.PortID != dev || kp.Status.Interfaces[0].PortID != dev {
		t.Fatalf("interface %+v / %+v, want the extended resource's claim %s and its port %s", kp.Spec.Interfaces[0], kp.Status.Interfaces[0], claim.Name, dev)
	}
	if d := countsSince(counts, f.sim.Counts()); d["neutron.ports.create"] != 0 || d["nova.interfaces.attach"] != 0 {
		t.Fatalf("the pod's path made ports or attaches: %v", d)
	}
	if evs := f.events("ext"); slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, reasonCapacityUnchecked+":") }) {
		t.Fatalf("a pod with an extended resource claim got %s: %v", reasonCapacityUnchecked, evs)
	}
}
