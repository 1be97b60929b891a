package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func dpdkRecord(id, ifname string) Record {
	return Record{
		ContainerID:    id,
		IfName:         ifname,
		Kind:           KindDPDK,
		MAC:            "fa:16:3e:00:00:01",
		PCIAddress:     "0000:00:05.0",
		OriginalDriver: "virtio-pci",
		TargetDriver:   "uio_pci_generic",
	}
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sameRecord(a, b Record) bool {
	if !a.Created.Equal(b.Created) {
		return false
	}
	a.Created, b.Created = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func TestPutGetDelete(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	r := dpdkRecord("c0ffee", "net1")
	r.Extra = map[string]string{"portID": "p-1"}
	if err := s.Put(r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("c0ffee", "net1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != SchemaVersion || got.Created.IsZero() {
		t.Errorf("Put did not set version and time: %+v", got)
	}
	r.Version, r.Created = got.Version, got.Created
	if !sameRecord(got, r) {
		t.Errorf("Get = %+v, want %+v", got, r)
	}
	fi, err := os.Stat(filepath.Join(s.Dir(), "c0ffee@net1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v, want 0600", fi.Mode().Perm())
	}
	if err := s.Delete("c0ffee", "net1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("c0ffee", "net1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete("c0ffee", "net1"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	entries, err := os.ReadDir(s.Dir())
	if err != nil {
		t.Fatalf("list %s: %v", s.Dir(), err)
	}
	if len(entries) != 0 {
		t.Errorf("left in directory: %v", entries)
	}
}

func TestKeysDoNotCollide(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	a, b := dpdkRecord("a_b", "c"), dpdkRecord("a", "b_c")
	b.PCIAddress = "0000:00:06.0"
	for _, r := range []Record{a, b} {
		if err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Get("a_b", "c"); got.PCIAddress != a.PCIAddress {
		t.Errorf("a_b/c = %+v", got)
	}
	if got, _ := s.Get("a", "b_c"); got.PCIAddress != b.PCIAddress {
		t.Errorf("a/b_c = %+v", got)
	}
}

func TestInvalidKeysRefused(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	for _, k := range []Key{
		{"", "net1"}, {"../etc", "net1"}, {"a@b", "net1"}, {"-x", "net1"},
		{"abc", ""}, {"abc", "a/b"}, {"abc", ".."}, {"abc", "a b"}, {"abc", "sixteen-chars-xx"},
	} {
		r := dpdkRecord(k.ContainerID, k.IfName)
		if err := s.Put(r); err == nil {
			t.Errorf("Put(%q) accepted", k)
		}
		if _, err := s.Get(k.ContainerID, k.IfName); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want a validation error", k, err)
		}
	}
	if err := s.Put(Record{ContainerID: "abc", IfName: "net1", Kind: KindDPDK}); err == nil {
		t.Error("dpdk record without MAC and PCI address accepted")
	}
}

// TestListStaleAndCorrupt: records that do not parse, or do not match
// their file name, are set aside into the quarantine directory and
// reported once each; List returns the others without an error, so no
// other attachment waits on them. A record of a newer schema stays in
// place, reported once.
func TestListStaleAndCorrupt(t *testing.T) {
	t.Parallel()
	var reports []SetAsideReport
	s, err := New(filepath.Join(t.TempDir(), "checkpoints"), WithReport(func(r SetAsideReport) { reports = append(reports, r) }))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c2", "c1", "c3"} {
		if err := s.Put(dpdkRecord(id, "net1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "bad@net1.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A valid record under the wrong file name is not trusted either.
	moved, _ := Marshal(func() Record { r := dpdkRecord("c9", "net1"); r.Version = 1; return r }())
	if err := os.WriteFile(filepath.Join(s.Dir(), "other@net1.json"), moved, 0o600); err != nil {
		t.Fatal(err)
	}
	newer := fmt.Sprintf(`{"version": %d, "containerID": "c8", "ifName": "net1", "kind": "dpdk"}`, SchemaVersion+1)
	if err := os.WriteFile(filepath.Join(s.Dir(), "c8@net1.json"), []byte(newer), 0o600); err != nil {
		t.Fatal(err)
	}
	recs, err := s.List()
	if err != nil {
		t.Errorf("List error = %v, want none (the bad files are set aside)", err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ContainerID)
	}
	if fmt.Sprint(ids) != "[c1 c2 c3]" {
		t.Errorf("List = %v, want [c1 c2 c3]", ids)
	}
	stale, _ := s.Stale(func(r Record) bool { return r.ContainerID == "c2" })
	if len(stale) != 2 || stale[0].ContainerID != "c1" || stale[1].ContainerID != "c3" {
		t.Errorf("Stale = %+v", stale)
	}
	if _, err := s.List(); err != nil {
		t.Fatal(err)
	}
	got := map[string]SetAsideReport{}
	for _, r := range reports {
		got[r.File] = r
	}
	if len(reports) != 3 || !errors.Is(got["bad@net1.json"].Reason, ErrCorrupt) || !errors.Is(got["other@net1.json"].Reason, ErrCorrupt) ||
		!errors.Is(got["c8@net1.json"].Reason, ErrNewerSchema) || got["c8@net1.json"].To != "" {
		t.Fatalf("reports after two Lists: %+v, want the two corrupt files and the newer one, once each", reports)
	}
	for _, name := range []string{"bad@net1.json", "other@net1.json"} {
		if _, err := os.Stat(filepath.Join(s.Dir(), name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("corrupt record %s still in place: %v", name, err)
		}
		if to := got[name].To; filepath.Dir(to) != filepath.Join(s.Dir(), QuarantineDir) || !strings.HasPrefix(filepath.Base(to), name) {
			t.Errorf("corrupt record %s set aside to %q", name, to)
		} else if _, err := os.Stat(to); err != nil {
			t.Errorf("set-aside record %s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "c8@net1.json")); err != nil {
		t.Errorf("newer-schema record moved: %v", err)
	}
	// Get of a corrupt record sets it aside too: no record for the key.
	if err := os.WriteFile(filepath.Join(s.Dir(), "c5@net1.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("c5", "net1"); !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get of a corrupt record = %v, want ErrNotFound (and ErrCorrupt)", err)
	}
	if len(reports) != 4 || reports[3].File != "c5@net1.json" {
		t.Errorf("reports %+v, want c5@net1.json's last", reports)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	data := fmt.Sprintf(`{"version": %d, "containerID": "c1", "ifName": "net1", "kind": "dpdk", "future": true}`, SchemaVersion+1)
	if err := os.WriteFile(filepath.Join(s.Dir(), "c1@net1.json"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("c1", "net1"); !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Get = %v, want ErrNewerSchema", err)
	}
}

func TestRemoveTemp(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	old := filepath.Join(s.Dir(), tmpPrefix+"1")
	fresh := filepath.Join(s.Dir(), tmpPrefix+"2")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	n, err := s.RemoveTemp(time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("RemoveTemp = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("fresh temp file removed")
	}
	if recs, err := s.List(); err != nil || len(recs) != 0 {
		t.Errorf("List sees temp files: %v %v", recs, err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			for j := range 5 {
				r := dpdkRecord(fmt.Sprintf("c%d", i), "net1")
				r.Extra = map[string]string{"n": fmt.Sprint(j)}
				if err := s.Put(r); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	recs, err := s.List()
	if err != nil || len(recs) != 32 {
		t.Fatalf("List = %d records, %v; want 32", len(recs), err)
	}
	for _, r := range recs {
		if r.Extra["n"] != "4" {
			t.Errorf("%s: last write lost: %v", r.Key(), r.Extra)
		}
	}
}

// TestPreviousSchemaRead: records in the formats previous daemons wrote
// (schema version 2, without a network name; version 1, the kernel
// interface's port ID in extra; and a record without a version) are read,
// upgraded to the current version, and written back in the current format.
func TestPreviousSchemaRead(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	files := map[string]string{
		"c1@eth0.json": `{
  "version": 1,
  "containerID": "c1",
  "ifName": "eth0",
  "kind": "macvlan",
  "mac": "fa:16:3e:00:00:55",
  "netns": "/var/run/netns/cni-1",
  "extra": {
    "portID": "5d1c8f0e-2b7a-4c3e-9f1d-0a2b3c4d5e6f"
  },
  "created": "2026-11-27T02:00:00Z"
}
`,
		"c1@net1.json": `{"version":1,"containerID":"c1","ifName":"net1","kind":"dpdk","mac":"fa:16:3e:00:00:77",` +
			`"pciAddress":"0000:01:00.0","originalDriver":"virtio-pci","targetDriver":"uio_pci_generic","created":"2026-11-27T02:00:00Z"}`,
		"c2@eth0.json": `{"containerID":"c2","ifName":"eth0","kind":"vlan","netns":"/var/run/netns/cni-2","extra":{"portID":"p2","other":"x"},"created":"2026-11-27T02:00:00Z"}`,
		"c3@net2.json": `{"version":2,"containerID":"c3","ifName":"net2","kind":"dpdk","mac":"fa:16:3e:00:00:78","portID":"p3",` +
			`"pciAddress":"0000:02:00.0","originalDriver":"virtio-pci","targetDriver":"vfio-pci","created":"2026-11-27T02:00:00Z"}`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.Dir(), name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mv, err := s.Get("c1", "eth0")
	if err != nil {
		t.Fatalf("Get of a version 1 record: %v", err)
	}
	if mv.Version != SchemaVersion || mv.PortID != "5d1c8f0e-2b7a-4c3e-9f1d-0a2b3c4d5e6f" || mv.Extra != nil ||
		mv.Kind != KindMACVLAN || mv.NetNS != "/var/run/netns/cni-1" || mv.MAC != "fa:16:3e:00:00:55" {
		t.Errorf("version 1 kernel record read as %+v", mv)
	}
	dp, err := s.Get("c1", "net1")
	if err != nil || dp.Version != SchemaVersion || dp.PCIAddress != "0000:01:00.0" || dp.OriginalDriver != "virtio-pci" || dp.PortID != "" {
		t.Errorf("version 1 dpdk record read as %+v, %v", dp, err)
	}
	nv, err := s.Get("c2", "eth0")
	if err != nil || nv.Version != SchemaVersion || nv.PortID != "p2" || len(nv.Extra) != 1 || nv.Extra["other"] != "x" {
		t.Errorf("record without a version read as %+v, %v", nv, err)
	}
	v2, err := s.Get("c3", "net2")
	if err != nil || v2.Version != SchemaVersion || v2.Network != "" || v2.PortID != "p3" || v2.TargetDriver != "vfio-pci" {
		t.Errorf("version 2 record read as %+v, %v", v2, err)
	}
	recs, err := s.List()
	if err != nil || len(recs) != 4 {
		t.Fatalf("List = %d records, %v; want all 4", len(recs), err)
	}
	// Written again, it is in the current format, with a network name.
	mv.Network = "kuryr"
	if err := s.Put(mv); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(s.Dir(), "c1@eth0.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), fmt.Sprintf(`"version": %d`, SchemaVersion)) || !strings.Contains(string(b), `"portID": "5d1c8f0e`) ||
		!strings.Contains(string(b), `"network": "kuryr"`) || strings.Contains(string(b), `"extra"`) {
		t.Errorf("rewritten record:\n%s", b)
	}
}
