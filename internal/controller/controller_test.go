package controller

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// TestMultiVIFPodLifecycle: a pod asking for a nested-vlan management network
// and a nested-dpdk data-plane network (plus eth0, primary mode) gets every
// port in the cloud wired to its node and recorded; deleting it leaves
// nothing behind.
func TestMultiVIFPodLifecycle(t *testing.T) {
	f := newFixture(t, 2)
	f.standardNADs()
	f.startController()
	node := f.ns + "-node-1"
	srv := f.servers[node]
	pod := f.createPod("vnf", node, "mgmt,dataplane@dpdk0")

	kp := f.waitReady("vnf")
	if kp.Spec.PodUID != pod.UID || kp.Labels[v1alpha1.NodeLabel] != node || !slices.Contains(kp.Finalizers, v1alpha1.Finalizer) {
		t.Fatalf("KuryrPod metadata: uid %s labels %v finalizers %v", kp.Spec.PodUID, kp.Labels, kp.Finalizers)
	}
	if len(kp.OwnerReferences) != 1 || kp.OwnerReferences[0].UID != pod.UID {
		t.Fatalf("KuryrPod owner references %+v, want the pod", kp.OwnerReferences)
	}
	got := map[string]v1alpha1.InterfaceStatus{}
	for _, s := range kp.Status.Interfaces {
		got[s.IfName] = s
	}
	if len(got) != 3 {
		t.Fatalf("interfaces %+v, want eth0, net1, dpdk0", kp.Status.Interfaces)
	}
	subs, ok := f.sim.Subports(srv.TrunkID)
	if !ok {
		t.Fatalf("trunk %s of node %s not found", srv.TrunkID, node)
	}
	for ifName, want := range map[string]struct {
		driver v1alpha1.Driver
		subnet string
		cidr   string
	}{
		"eth0":  {v1alpha1.DriverNestedVLAN, f.podSubnet, "10.1."},
		"net1":  {v1alpha1.DriverNestedVLAN, f.mgmtNet.ID, "10.2.0."},
		"dpdk0": {v1alpha1.DriverNestedDPDK, f.dpNet.ID, "10.3.0."},
	} {
		s := got[ifName]
		if s.Driver != want.driver || s.State != v1alpha1.StateActive || s.MAC == "" || len(s.IPs) != 1 || !strings.HasPrefix(s.IPs[0], want.cidr) || s.MTU != 1450 {
			t.Errorf("%s status %+v, want %s Active with a MAC, an IP in %s* and MTU 1450", ifName, s, want.driver, want.cidr)
			continue
		}
		p, ok := f.sim.Port(s.PortID)
		if !ok {
			t.Errorf("%s: port %s not in the cloud", ifName, s.PortID)
			continue
		}
		if p.FixedIPs[0].SubnetID != want.subnet || p.MACAddress != s.MAC || !strings.HasPrefix(s.IPs[0], p.FixedIPs[0].IPAddress+"/") {
			t.Errorf("%s: port %+v does not match status %+v or subnet %s", ifName, p, s, want.subnet)
		}
		for _, tag := range []string{clusterTag(f.clusterID), podTag(pod.UID), tagPrefixIfName + ifName} {
			if !slices.Contains(p.Tags, tag) {
				t.Errorf("%s: port tags %v lack %q", ifName, p.Tags, tag)
			}
		}
		if !slices.Contains(p.SecurityGroups, f.sg) {
			t.Errorf("%s: port security groups %v lack %s", ifName, p.SecurityGroups, f.sg)
		}
		if want.driver == v1alpha1.DriverNestedVLAN {
			i := slices.IndexFunc(subs, func(sp cloudsim.Subport) bool { return sp.PortID == p.ID })
			if i < 0 || subs[i].SegmentationID != s.VLANID || s.VLANID == 0 {
				t.Errorf("%s: port %s is not a subport of node %s's trunk with VLAN %d (subports %+v)", ifName, p.ID, node, s.VLANID, subs)
			}
		} else if p.DeviceID != srv.Server.ID || p.DeviceOwner != "compute:nova" || p.Status != "ACTIVE" {
			t.Errorf("%s: port %s attached to %q (%s, %s), want server %s", ifName, p.ID, p.DeviceID, p.DeviceOwner, p.Status, srv.Server.ID)
		}
	}
	if got["eth0"].VLANID == got["net1"].VLANID {
		t.Errorf("eth0 and net1 share VLAN %d on one trunk", got["eth0"].VLANID)
	}
	if !slices.ContainsFunc(got["eth0"].Routes, func(r v1alpha1.Route) bool { return r.Dst == "0.0.0.0/0" }) {
		t.Errorf("eth0 routes %+v lack the default route", got["eth0"].Routes)
	}
	var kn v1alpha1.KuryrNode
	must(t, f.c.Get(f.ctx, types.NamespacedName{Name: node}, &kn))
	if kn.Status.ServerID != srv.Server.ID || kn.Status.TrunkID != srv.TrunkID || kn.Status.ParentPortID != srv.ParentPort.ID || kn.Status.ParentMAC != srv.ParentPort.MACAddress {
		t.Errorf("KuryrNode %s status %+v, want server %s, trunk %s, parent %s", node, kn.Status, srv.Server.ID, srv.TrunkID, srv.ParentPort.ID)
	}
	var p corev1.Pod
	must(t, f.c.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "vnf"}, &p))
	if !slices.Contains(p.Finalizers, v1alpha1.Finalizer) {
		t.Errorf("pod finalizers %v lack %s", p.Finalizers, v1alpha1.Finalizer)
	}

	f.deletePod("vnf")
	f.waitGone("vnf")
	if left := f.leftovers(); left != "" {
		t.Fatalf("after delete the cloud still holds: %s", left)
	}
}

// TestKuryrKubernetesNADs: NADs written for kuryr-kubernetes (the
// openstack.org/kuryr-config annotation) work unchanged, also with MACVLAN.
func TestKuryrKubernetesNADs(t *testing.T) {
	f := newFixture(t, 1)
	f.opts.Primary = false
	f.createNAD("dpdk-kuryr", `{"cniVersion":"0.3.1","name":"dpdk-kuryr","type":"kuryr-cni"}`,
		map[string]string{v1alpha1.KuryrConfigAnnotation: fmt.Sprintf(`{"subnetId":%q,"driverType":"nested-dpdk"}`, f.dpNet.ID)})
	f.createNAD("mgmt-kuryr", "", map[string]string{v1alpha1.KuryrConfigAnnotation: fmt.Sprintf(`{"subnetId":%q,"driverType":"nested-macvlan"}`, f.mgmtNet.ID)})
	f.startController()
	node := f.ns + "-node-0"
	f.createPod("legacy", node, `[{"name":"mgmt-kuryr","interface":"mgmt0"},{"name":"dpdk-kuryr"}]`)
	kp := f.waitReady("legacy")
	if len(kp.Status.Interfaces) != 2 || kp.Status.Interfaces[0].IfName != "mgmt0" || kp.Status.Interfaces[1].IfName != "net2" {
		t.Fatalf("interfaces %+v, want mgmt0 (macvlan) and net2 (dpdk), no eth0 in delegate mode", kp.Status.Interfaces)
	}
	mv := kp.Status.Interfaces[0]
	parent, ok := f.sim.Port(f.servers[node].ParentPort.ID)
	if !ok {
		t.Fatalf("node %s's port is gone", node)
	}
	ip := strings.Split(mv.IPs[0], "/")[0]
	if !slices.ContainsFunc(parent.AllowedAddressPairs, func(a cloudsim.AddressPair) bool { return a.IPAddress == ip && strings.EqualFold(a.MACAddress, mv.MAC) }) {
		t.Fatalf("parent port pairs %+v lack %s/%s", parent.AllowedAddressPairs, ip, mv.MAC)
	}
	if kp.Spec.Interfaces[1].DPDKDriver != v1alpha1.DPDKDriverUIOPCIGeneric {
		t.Fatalf("dpdk driver %q, want the default uio_pci_generic", kp.Spec.Interfaces[1].DPDKDriver)
	}
	f.deletePod("legacy")
	f.waitGone("legacy")
	if parent, ok = f.sim.Port(f.servers[node].ParentPort.ID); !ok || len(parent.AllowedAddressPairs) != 0 {
		t.Fatalf("parent port (found: %v) still allows %+v", ok, parent.AllowedAddressPairs)
	}
	if left := f.leftovers(); left != "" {
		t.Fatalf("after delete the cloud still holds: %s", left)
	}
}

// TestBadRequestsAreReportedWithoutRetryStorm: each kind of mistake gives an
// Event and a condition naming it, and the controller does not keep
// hammering the cloud about it.
func TestBadRequestsAreReportedWithoutRetryStorm(t *testing.T) {
	f := newFixture(t, 1)
	f.opts.Primary = false
	f.createNAD("sriov", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"sriov","type":"kuryr-cni","driver":"nested-sriov","subnetId":%q}`, f.dpNet.ID), nil)
	f.createNAD("badsubnet", `{"cniVersion":"1.0.0","name":"badsubnet","type":"kuryr-cni","driver":"nested-dpdk","subnetId":"0badc0de-0000-0000-0000-000000000000"}`, nil)
	f.startController()
	node := f.ns + "-node-0"
	cases := []struct {
		pod, networks, condition, reason, want string
	}{
		{"malformed", `[{"name":"mgmt"`, v1alpha1.ConditionSpecValid, "InvalidNetworkRequest", "not a valid JSON list"},
		{"missing", "nope", v1alpha1.ConditionSpecValid, "NetworkNotFound", "nope does not exist"},
		{"unknown-driver", "sriov", v1alpha1.ConditionSpecValid, "InvalidNetworkRequest", `unknown driver "nested-sriov"`},
		{"bad-subnet", "badsubnet", v1alpha1.ConditionReady, reasonFailed, "subnet 0badc0de-0000-0000-0000-000000000000"},
	}
	for _, c := range cases {
		f.createPod(c.pod, node, c.networks)
	}
	for _, c := range cases {
		f.eventually(20*time.Second, c.pod+" reported", func() (bool, string) {
			kp, err := f.kuryrPod(c.pod)
			if err != nil {
				return false, err.Error()
			}
			cond := meta.FindStatusCondition(kp.Status.Conditions, c.condition)
			if cond == nil || cond.Status != "False" || cond.Reason != c.reason || !strings.Contains(cond.Message, c.want) {
				return false, fmt.Sprintf("conditions %+v", kp.Status.Conditions)
			}
			evs := f.events(c.pod)
			return slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, c.reason+":") && strings.Contains(e, c.want) }),
				fmt.Sprintf("events %v", evs)
		})
	}
	if left := f.ourPorts(); len(left) != 0 {
		t.Fatalf("failed pods left ports: %+v", left)
	}
	// Quiet now: a few seconds more must bring (almost) no cloud calls.
	before := f.calls.Load()
	time.Sleep(3 * time.Second)
	if extra := f.calls.Load() - before; extra > 3 {
		t.Fatalf("%d OpenStack calls in 3 s after every error was reported: a retry storm", extra)
	}

	// Creating the missing NAD wakes the pod waiting for it.
	f.createNAD("nope", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"nope","type":"kuryr-cni","driver":"nested-dpdk","subnetId":%q}`, f.dpNet.ID), nil)
	f.waitReady("missing")
	for _, c := range cases {
		f.deletePod(c.pod)
		f.waitGone(c.pod)
	}
	if left := f.leftovers(); left != "" {
		t.Fatalf("after delete the cloud still holds: %s", left)
	}
}

// TestCompletedPodReleasesItsInterfaces: a pod that has finished for good
// (a Job's pod) gives its ports back at once, without waiting to be deleted,
// and is not given new ones.
func TestCompletedPodReleasesItsInterfaces(t *testing.T) {
	f := newFixture(t, 1)
	f.standardNADs()
	f.startController()
	f.createPod("job", f.ns+"-node-0", "mgmt,dataplane")
	f.waitReady("job")
	var p corev1.Pod
	must(t, f.c.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "job"}, &p))
	p.Status.Phase = corev1.PodSucceeded
	must(t, f.c.Status().Update(f.ctx, &p))
	f.eventually(20*time.Second, "completed pod released", func() (bool, string) {
		_, err := f.kuryrPod("job")
		var cur corev1.Pod
		must(t, f.c.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "job"}, &cur))
		return err != nil && !slices.Contains(cur.Finalizers, v1alpha1.Finalizer) && f.leftovers() == "",
			fmt.Sprintf("KuryrPod err %v, finalizers %v, cloud %s", err, cur.Finalizers, f.leftovers())
	})
	// It stays released: nothing is created again for it.
	time.Sleep(time.Second)
	if _, err := f.kuryrPod("job"); err == nil || f.leftovers() != "" {
		t.Fatalf("a completed pod got interfaces again: %v %s", err, f.leftovers())
	}
}

// TestCloudCallsPerPod: once a node's facts are cached, a nested-vlan pod
// costs the cloud its port, its subport and the poll that sees it ACTIVE;
// a second poll may come when a scheduled poll runs on an informer cache
// that has not yet seen the status the first one wrote.
func TestCloudCallsPerPod(t *testing.T) {
	f := newFixture(t, 1)
	f.startController()
	node := f.ns + "-node-0"
	f.createPod("warm", node, "")
	f.waitReady("warm")
	before := f.sim.Counts()
	f.createPod("counted", node, "")
	f.waitReady("counted")
	after := f.sim.Counts()
	total, calls := int64(0), []string{}
	for op, n := range after {
		if d := n - before[op]; d > 0 {
			total += d
			calls = append(calls, fmt.Sprintf("%s=%d", op, d))
		}
	}
	t.Logf("cloud calls for one nested-vlan pod: %d %v", total, calls)
	if total > 4 {
		t.Fatalf("%d cloud calls for one pod (%v), want at most 4", total, calls)
	}
}

// TestCreatedPortRecordsEndOnceTheStatusHoldsThem: the controller's own
// record of the ports it made for a pod (createdPorts, read while the
// informer may not show the status yet) is dropped once the status shows
// the interfaces settled (here the daemon's Plugged, the write that
// follows every ADD), not kept until the pod is released: at a thousand
// pods those records were a tenth of the live heap. The pod then still
// releases every port.
func TestCreatedPortRecordsEndOnceTheStatusHoldsThem(t *testing.T) {
	f := newFixture(t, 1)
	f.standardNADs()
	f.opts.ReleaseGrace = Duration{time.Second} // no daemon here to unplug
	f.startController()
	pod := f.createPod("recorded", f.ns+"-node-0", "mgmt")
	kp := f.waitReady("recorded")
	for i := range kp.Status.Interfaces { // as the daemon reports its ADD
		kp.Status.Interfaces[i].State = v1alpha1.StatePlugged
	}
	must(t, f.c.Status().Update(f.ctx, kp))
	f.eventually(30*time.Second, "the pod's port records dropped once its status shows every interface Plugged", func() (bool, string) {
		c := &f.rec.Load().created
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.m[pod.UID]) == 0, fmt.Sprintf("records of interfaces %v left", slices.Collect(maps.Keys(c.m[pod.UID])))
	})
	f.deletePod("recorded")
	f.waitGone("recorded")
	if left := f.leftovers(); left != "" {
		t.Fatalf("after release: %s", left)
	}
}
