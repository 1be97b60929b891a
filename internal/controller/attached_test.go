package controller

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// TestKuryrNodeListsEveryAttachedDPDKPort: the node's KuryrNode lists each
// nested-dpdk port the controller attached to the node for a pod, with its
// MAC and the pod as owner, by the time the pod's KuryrPod says the
// interface is ACTIVE (read at once, no waiting: the daemon binds only
// what is listed): a port of the node's pool given to a pod, and a pod's
// own port (it asked for a MAC: no pool serves it), marked Unpooled. A
// restarted controller rebuilds its record of the pod's own port from
// Neutron. Once the pod is deleted and its port detached, the KuryrNode no
// longer lists it; the pooled pod's port goes back to its pool, no owner.
func TestKuryrNodeListsEveryAttachedDPDKPort(t *testing.T) {
	f, node := dpdkFixture(t, PoolSize{Min: 1, Max: 2, Batch: 1}, nil)
	stop := f.startController()
	const ownMAC = "fa:16:3e:aa:bb:01"
	pods := map[string]types.UID{
		"pooled": f.createPod("pooled", node, "dataplane").UID,
		"own":    f.createPod("own", node, fmt.Sprintf(`[{"name":"dataplane","mac":%q}]`, ownMAC)).UID,
	}
	ports := map[string]string{}
	for name, uid := range pods {
		kp := f.waitReady(name)
		st, err := f.kuryrNodeStatus(node)
		must(t, err)
		s := kp.Status.Interfaces[0]
		ports[name] = s.PortID
		dev, ok := st.DPDKDevice(s.PortID)
		want := v1alpha1.DPDKDevice{PortID: s.PortID, MAC: s.MAC, State: v1alpha1.DPDKDeviceInUse, Owner: v1alpha1.DPDKOwnerPod + string(uid),
			Unpooled: name == "own"}
		if !ok || dev.MAC != want.MAC || dev.State != want.State || dev.Owner != want.Owner || dev.Unpooled != want.Unpooled {
			t.Fatalf("pod %s ACTIVE with port %s; KuryrNode lists %+v (found %v), want %+v", name, s.PortID, dev, ok, want)
		}
		if !f.attached(node, s.PortID) {
			t.Fatalf("pod %s's port %s is not attached to the node's server", name, s.PortID)
		}
	}
	if _, pooled := f.poolPorts()[ports["own"]]; pooled {
		t.Fatalf("the pod that asked for a MAC got pool port %s", ports["own"])
	}

	stop()
	f.startController()
	server := f.servers[node].Server.ID
	f.eventually(20*time.Second, "the restarted controller's record of the pod's own port", func() (bool, string) {
		r := f.rec.Load()
		r.attached.mu.Lock()
		loaded := r.attached.loaded
		r.attached.mu.Unlock()
		devs := r.attached.onServer(server, nil)
		return loaded && len(devs) == 1 && devs[0].PortID == ports["own"], fmt.Sprintf("loaded %v, %+v", loaded, devs)
	})

	f.deletePod("own")
	f.deletePod("pooled")
	f.waitGone("own")
	f.waitGone("pooled")
	f.eventually(20*time.Second, "the KuryrNode without the pods' ports as theirs", func() (bool, string) {
		st, err := f.kuryrNodeStatus(node)
		if err != nil {
			return false, err.Error()
		}
		_, own := st.DPDKDevice(ports["own"])
		pooled, _ := st.DPDKDevice(ports["pooled"])
		return !own && pooled.Owner == "", fmt.Sprintf("%+v", st.DPDKDevices)
	})
	if f.attached(node, ports["own"]) {
		t.Fatalf("the deleted pod's own port %s is still attached", ports["own"])
	}
}

// TestAttachedPortsRecord: what the record of pods' own ports lists for a
// server's KuryrNode. A pod's port is recorded, a pool's port or a port of
// no pod is not; before the first listing from Neutron, a KuryrNode's
// Unpooled entries (an earlier run's) are kept unless their port was
// detached since; a listing records the attached ports it shows, drops the
// recorded ones it does not show unless recorded after it began, and does
// not bring back a port detached after it began.
func TestAttachedPortsRecord(t *testing.T) {
	t.Parallel()
	cluster := clusterIdentity{name: "c", uid: "c-uid"}
	port := func(id, uid string, extra ...string) openstack.Port {
		tags := portTags(cluster, v1alpha1.DriverNestedDPDK)
		if uid != "" {
			tags = append(tags, ownerTags(types.UID(uid), "net1")...)
		}
		return openstack.Port{ID: id, MACAddress: "fa:16:3e:00:00:" + id[1:], NetworkID: "n", DeviceID: "srv",
			FixedIPs: []openstack.FixedIP{{SubnetID: "s", IPAddress: "10.0.0.1"}}, SecurityGroups: []string{"sg2", "sg1"},
			Tags: append(tags, extra...)}
	}
	ids := func(devs []v1alpha1.DPDKDevice) string {
		var out []string
		for _, d := range devs {
			out = append(out, d.PortID)
		}
		return fmt.Sprint(out)
	}
	a := newAttachedPorts()
	a.put("srv", port("p1", "u1"))
	a.put("srv", port("p2", "", tagPrefixPool+"node"))   // a pool's
	a.put("srv", port("p3", "u3", tagPrefixPool+"node")) // a pool's, given to a pod
	a.put("srv", port("p4", ""))                         // no pod's
	a.put("other", port("p5", "u5"))                     // another VM's
	prev := []v1alpha1.DPDKDevice{{PortID: "p6", Unpooled: true, Owner: "pod/u6"}, {PortID: "p7", Unpooled: true}, {PortID: "p8"}}
	a.forget("p7")
	got := a.onServer("srv", prev)
	if ids(got) != "[p1 p6]" {
		t.Fatalf("before the first listing: %s, want [p1 p6]", ids(got))
	}
	if d := got[0]; d.MAC != "fa:16:3e:00:00:1" || d.SubnetID != "s" || d.NetworkID != "n" || fmt.Sprint(d.SecurityGroups) != "[sg1 sg2]" ||
		d.State != v1alpha1.DPDKDeviceInUse || d.Owner != "pod/u1" || !d.Unpooled {
		t.Fatalf("p1's entry %+v", d)
	}

	listed := time.Now()
	time.Sleep(time.Millisecond)
	a.put("srv", port("p9", "u9")) // attached after the listing began
	a.forget("p10")                // detached after the listing began
	a.sync([]openstack.Port{port("p10", "u10"), port("p11", "u11"), port("p12", "u12", tagPrefixPool+"node")}, listed)
	if got := ids(a.onServer("srv", prev)); got != "[p11 p9]" {
		t.Fatalf("after a listing of p10, p11 and a pool's p12: %s, want [p11 p9] (p1 gone, p10 detached since, p6 no longer carried)", got)
	}
	a.forget("p11")
	if got := ids(a.onServer("srv", nil)); got != "[p9]" {
		t.Fatalf("after p11's detach: %s, want [p9]", got)
	}
}
