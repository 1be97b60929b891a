package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
)

// SchemaVersion is the version of the record format this code writes. A
// record with a higher version was written by a newer daemon and is refused
// rather than misread; a record of the previous version is read and
// upgraded (see upgrade).
//
// Versions: 1 kept a kernel interface's Neutron port ID in Extra["portID"]
// (written by the daemon); 2 has the PortID field, for every kind (written
// by the binding drivers); 3 adds Network, the CNI network the attachment
// belongs to (CNI GC is scoped to it), and PodUID, the pod it was made for
// (the daemon's start-up reconcile), and has NetNS for every kind. A
// version 2 record has none of these: it is read with them "".
const SchemaVersion = 3

// oldestVersion is the oldest record format Parse still reads.
const oldestVersion = 1

// Kinds of attachment a record can describe.
const (
	KindDPDK    = "dpdk"
	KindVLAN    = "vlan"
	KindMACVLAN = "macvlan"
	// KindClaimed: a pod interface that is a device a DRA claim prepared
	// (bound by the claim, not by this attachment; nothing to rebind).
	KindClaimed = "claimed"
)

var (
	// ErrCorrupt means a record could not be parsed or failed validation.
	ErrCorrupt = errors.New("corrupt checkpoint record")
	// ErrNewerSchema means a record was written with a schema version this
	// code does not know.
	ErrNewerSchema = errors.New("checkpoint record from a newer schema version")
)

// Record is what the node side remembers about one attachment (one container
// ID and interface name) so that DEL can undo ADD after anything, a daemon
// restart included.
type Record struct {
	Version     int    `json:"version"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Kind        string `json:"kind"`
	MAC         string `json:"mac,omitempty"`
	// PortID is the Neutron port behind the attachment (since version 2).
	PortID string `json:"portID,omitempty"`
	// Network is the name of the CNI network configuration whose ADD made
	// the attachment (since version 3): a CNI GC for that network may undo
	// it, a GC for another network may not. "" in records of older
	// versions, which no GC undoes (the start-up reconcile does).
	Network string `json:"network,omitempty"`
	// PodUID is the Kubernetes pod the attachment was made for (since
	// version 3): the daemon's start-up reconcile undoes the attachments of
	// pods that no longer exist. "" in older records.
	PodUID string `json:"podUID,omitempty"`

	// DPDK: the device and the driver to give it back to.
	PCIAddress     string `json:"pciAddress,omitempty"`
	OriginalDriver string `json:"originalDriver,omitempty"`
	TargetDriver   string `json:"targetDriver,omitempty"`
	DeviceInfoFile string `json:"deviceInfoFile,omitempty"`

	// NetNS is the pod's network namespace path (CNI_NETNS of the ADD):
	// where a kernel interface was moved, and for every kind what the
	// daemon's start-up reconcile checks still exists.
	NetNS string `json:"netns,omitempty"`
	// Extra holds kind-specific facts that have no field of their own.
	Extra map[string]string `json:"extra,omitempty"`

	Created time.Time `json:"created"`
}

// Key identifies a record.
type Key struct {
	ContainerID string
	IfName      string
}

func (k Key) String() string { return k.ContainerID + "/" + k.IfName }

// Key returns the record's key.
func (r Record) Key() Key { return Key{ContainerID: r.ContainerID, IfName: r.IfName} }

// containerIDRE is the CNI spec's rule for container IDs.
var containerIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// ValidateKey checks a container ID and interface name the way the CNI spec
// and libcni do: container IDs are alphanumeric plus "_.-", starting
// alphanumeric; interface names are 1–15 bytes without "/", ":" or
// whitespace and not "." or "..".
func ValidateKey(k Key) error {
	if len(k.ContainerID) > 256 || !containerIDRE.MatchString(k.ContainerID) {
		return fmt.Errorf("invalid container ID %q", k.ContainerID)
	}
	n := k.IfName
	if n == "" || len(n) > 15 || n == "." || n == ".." || strings.ContainsAny(n, "/:\x00") ||
		strings.IndexFunc(n, isSpace) >= 0 {
		return fmt.Errorf("invalid interface name %q for container %s", n, k.ContainerID)
	}
	return nil
}

func isSpace(r rune) bool { return r == ' ' || (r >= '\t' && r <= '\r') || r == 0x85 || r == 0xa0 }

// Validate checks a record before it is written or after it is read.
func (r Record) Validate() error {
	if r.Version < 1 {
		return fmt.Errorf("schema version %d", r.Version)
	}
	if r.Version > SchemaVersion {
		return fmt.Errorf("%w: version %d, this daemon knows %d", ErrNewerSchema, r.Version, SchemaVersion)
	}
	if err := ValidateKey(r.Key()); err != nil {
		return err
	}
	if r.Kind == "" {
		return fmt.Errorf("record %s has no kind", r.Key())
	}
	if r.MAC != "" {
		if _, err := net.ParseMAC(r.MAC); err != nil {
			return fmt.Errorf("record %s: MAC %q: %w", r.Key(), r.MAC, err)
		}
	}
	if r.PCIAddress != "" && !netconf.ValidPCIAddress(r.PCIAddress) {
		return fmt.Errorf("record %s: invalid PCI address %q", r.Key(), r.PCIAddress)
	}
	if r.Kind == KindDPDK && (r.PCIAddress == "" || r.MAC == "") {
		return fmt.Errorf("record %s: a dpdk record needs a MAC and a PCI address", r.Key())
	}
	for _, d := range []string{r.OriginalDriver, r.TargetDriver} {
		if strings.ContainsAny(d, "/\x00") || d == "." || d == ".." {
			return fmt.Errorf("record %s: invalid driver name %q", r.Key(), d)
		}
	}
	return nil
}

// Parse decodes and validates a record. Unknown fields are refused within
// a known schema version; a newer version is refused with ErrNewerSchema; a
// record of an older version still read (a version-less one counts as
// version 1) comes back upgraded to SchemaVersion.
func Parse(data []byte) (Record, error) {
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if head.Version > SchemaVersion {
		return Record{}, fmt.Errorf("%w: version %d, this daemon knows %d", ErrNewerSchema, head.Version, SchemaVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if dec.More() {
		return Record{}, fmt.Errorf("%w: trailing data after the record", ErrCorrupt)
	}
	upgrade(&r)
	if len(r.Extra) == 0 {
		r.Extra = nil
	}
	if err := r.Validate(); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return r, nil
}

// upgrade brings a record of an older schema version to SchemaVersion.
func upgrade(r *Record) {
	if r.Version == 0 {
		r.Version = oldestVersion
	}
	if r.Version == 1 {
		if id, ok := r.Extra[extraPortID]; ok && r.PortID == "" {
			r.PortID = id
			delete(r.Extra, extraPortID)
		}
		r.Version = 2
	}
	if r.Version == 2 {
		// Version 3 only adds Network and PodUID, which a version 2
		// record cannot know: they stay "".
		r.Version = 3
	}
}

// extraPortID is where version 1 kept the port ID.
const extraPortID = "portID"

// Marshal encodes a valid record.
func Marshal(r Record) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode record %s: %w", r.Key(), err)
	}
	return append(b, '\n'), nil
}
