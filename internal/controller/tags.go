package controller

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// Tags on every port the controller creates. Neutron is the source of truth:
// from these alone the controller (and its garbage collector) can find, after
// any crash, every port it made, whose it is, and how it was wired.
//
// Schema v1 (tagSchemaV1) records the driver with the port; release reads it
// from there. Ports of the previous schema (v0: no kuryr-tags and no
// kuryr-driver tag) are still read: their driver is inferred from the
// per-driver tags and the port's device, as that schema's writer left them.
const (
	// tagPrefixCluster carries the configured cluster name (clusterID),
	// tagPrefixClusterUID the UID of the cluster's kube-system namespace:
	// two clusters given the same name in one project still tell their
	// ports apart. Ports made before the UID tag existed carry the name
	// alone (see clusterIdentity).
	tagPrefixCluster    = "kuryr-cluster="
	tagPrefixClusterUID = "kuryr-cluster-uid="
	tagPrefixPod        = "kuryr-pod="
	tagPrefixIfName     = "kuryr-ifname="
	// tagPrefixDriver names the driver that wires the port (v1).
	tagPrefixDriver = "kuryr-driver="
	// tagPrefixSchema carries the version of this tag schema (v1).
	tagPrefixSchema = "kuryr-tags="
	// tagPrefixParent marks a nested-macvlan port with the VM port whose
	// allowed address pairs carry it.
	tagPrefixParent = "kuryr-parent="
	// tagPrefixTrunk marks a nested-vlan port with the trunk it is (to be) a
	// subport of. Neutron itself marks subports only once an agent binds
	// them (device_owner trunk:subport), so the tag is what release trusts.
	tagPrefixTrunk = "kuryr-trunk="
	// tagPrefixPool marks a port made for a pool, with the node whose pool
	// it is in; its subnet and security groups are its own fields.
	tagPrefixPool = "kuryr-pool="
	// tagPrefixClaim marks a pool port of nested-dpdk with the UID of the
	// ResourceClaim (DRA driver dpdk.kuryr-dpdk.io) it was allocated to.
	tagPrefixClaim = "kuryr-claim="
)

// tagSchemaV1 is the tag schema this controller writes.
const tagSchemaV1 = "v1"

// DeviceOwnerKuryr marks nested-vlan and nested-macvlan ports (kuryr's convention).
const DeviceOwnerKuryr = "compute:kuryr"

func clusterTag(clusterID string) string { return tagPrefixCluster + clusterID }
func podTag(uid types.UID) string        { return tagPrefixPod + string(uid) }

// clusterIdentity is what tells this cluster's ports from any other's in
// the project: the configured name and the UID of kube-system, which no
// other cluster has.
type clusterIdentity struct {
	name, uid string
}

// tags are the identity's tags, as every port of the cluster carries them.
func (c clusterIdentity) tags() []string {
	return []string{clusterTag(c.name), tagPrefixClusterUID + c.uid}
}

// owns says whether port p is this cluster's: both tags. A port of the
// previous tag schema (the name alone, no UID tag) is not known to be
// ours: another cluster of the same name may have made it (legacy says so).
func (c clusterIdentity) owns(p openstack.Port) bool {
	return slices.Contains(p.Tags, clusterTag(c.name)) && tagValue(p.Tags, tagPrefixClusterUID) == c.uid
}

// legacy says whether port p carries this cluster's name and no cluster
// UID: made by a controller older than the UID tag, of this cluster or of
// another with the same name.
func (c clusterIdentity) legacy(p openstack.Port) bool {
	return slices.Contains(p.Tags, clusterTag(c.name)) && tagValue(p.Tags, tagPrefixClusterUID) == ""
}

// portTags are the tags of a new port of cluster c for driver d: the
// cluster's, the driver and the schema. A port made for a pod also carries
// podTag and its interface name (ownerTags); one made ahead of any pod (a
// pool) does not, and still releases by these alone.
func portTags(c clusterIdentity, d v1alpha1.Driver) []string {
	return append(c.tags(), tagPrefixDriver+string(d), tagPrefixSchema+tagSchemaV1)
}

// ownerTags say which pod and which of its interfaces a port is for.
func ownerTags(uid types.UID, ifName string) []string {
	return []string{podTag(uid), tagPrefixIfName + ifName}
}

// tagValue returns the value of the first tag with prefix, or "".
func tagValue(tags []string, prefix string) string {
	for _, t := range tags {
		if v, ok := strings.CutPrefix(t, prefix); ok {
			return v
		}
	}
	return ""
}

// portDriverOf returns the driver that wired port p, as recorded in its
// tags. It is "" for a port of the previous schema that nothing wired yet
// (deleting it is all its release takes).
func portDriverOf(p openstack.Port) (v1alpha1.Driver, error) {
	switch schema := tagValue(p.Tags, tagPrefixSchema); schema {
	case tagSchemaV1:
		d := v1alpha1.Driver(tagValue(p.Tags, tagPrefixDriver))
		if d == "" {
			return "", fmt.Errorf("port %s has tag schema %s but no %s tag", p.ID, schema, tagPrefixDriver)
		}
		return d, nil
	case "":
		return legacyDriverOf(p), nil
	default:
		return "", fmt.Errorf("port %s has tag schema %q, this controller reads %s and the untagged previous one", p.ID, schema, tagSchemaV1)
	}
}

// legacyDriverOf reads a port of the previous schema (v0), which recorded
// only what wiring had done: the trunk of a nested-vlan port, the parent of
// a nested-macvlan port; a nested-dpdk port is one Nova attached.
func legacyDriverOf(p openstack.Port) v1alpha1.Driver {
	switch {
	case tagValue(p.Tags, tagPrefixTrunk) != "":
		return v1alpha1.DriverNestedVLAN
	case tagValue(p.Tags, tagPrefixParent) != "":
		return v1alpha1.DriverNestedMACVLAN
	case p.DeviceID != "" && strings.HasPrefix(p.DeviceOwner, "compute:") && p.DeviceOwner != DeviceOwnerKuryr:
		return v1alpha1.DriverNestedDPDK
	}
	return ""
}

// portName is readable in `openstack port list`.
func portName(namespace, pod, ifName string) string {
	n := fmt.Sprintf("kuryr-%s-%s-%s", namespace, pod, ifName)
	if len(n) > 255 {
		n = n[:255]
	}
	return n
}
