package binding

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/checkpoint"
)

// kernelRequest is kernelPodReq as the daemon asks for it.
func kernelRequest(t *testing.T, e kernelEnv) Request {
	l := kernelPodReq(t, e)
	return Request{ContainerID: "c0ffee", IfName: l.IfName, Netns: l.Netns, PortID: "port-eth0", MAC: l.MAC, MTU: l.MTU,
		IPs: l.IPs, Gateway: l.Gateway, Routes: l.Routes, DefaultRoute: l.DefaultRoute}
}

func kernelStore(t *testing.T) *checkpoint.Store {
	t.Helper()
	s, err := checkpoint.New(filepath.Join(t.TempDir(), "ck"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMACVLANDriverKeepsItsCheckpoint: the MACVLAN driver writes its
// checkpoint with the pod netns and port, keeps a right interface on a
// retried Attach and redoes a wrong one, and Detach works from the
// checkpoint alone (a new driver value, as after a daemon restart) and
// removes it.
func TestMACVLANDriverKeepsItsCheckpoint(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	ctx := context.Background()
	store := kernelStore(t)
	opts := KernelOptions{ParentNetns: e.node.Path(), Parent: func(context.Context) (string, error) { return "ens3", nil }}
	d := NewMACVLAN(store, opts)
	req := kernelRequest(t, e)

	if _, err := d.Attach(ctx, req); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	rec, err := store.Get(req.ContainerID, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Kind != checkpoint.KindMACVLAN || rec.NetNS != e.pod.Path() || rec.PortID != "port-eth0" || rec.MAC != "fa:16:3e:11:22:33" {
		t.Fatalf("checkpoint = %+v", rec)
	}
	if err := d.Check(ctx, req); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// Retried: the interface is right and stays.
	if _, err := d.Attach(ctx, req); err != nil {
		t.Fatalf("retried Attach: %v", err)
	}
	// Retried after someone changed it: redone.
	if err := d.kind.detach(ctx, e.pod.Path(), "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Attach(ctx, req); err != nil {
		t.Fatalf("Attach over a lost interface: %v", err)
	}
	if err := d.Check(ctx, req); err != nil {
		t.Fatalf("Check after the redo: %v", err)
	}

	restarted := NewMACVLAN(store, KernelOptions{})
	if err := restarted.Detach(ctx, req.ContainerID, "eth0"); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if got := kernelLinks(t, e.pod); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("pod links after Detach = %v", got)
	}
	if _, err := store.Get(req.ContainerID, "eth0"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("checkpoint after Detach: %v", err)
	}
	if err := restarted.Detach(ctx, req.ContainerID, "eth0"); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
}

// TestMACVLANDetachFromPreviousSchema: an interface plugged by the previous
// daemon, whose checkpoint is in the version 1 format, is removed.
func TestMACVLANDetachFromPreviousSchema(t *testing.T) {
	t.Parallel()
	e := kernelNewEnv(t)
	ctx := context.Background()
	store := kernelStore(t)
	if _, err := NewMACVLAN(nil, KernelOptions{}).kind.attach(ctx, kernelPodReq(t, e)); err != nil {
		t.Fatal(err)
	}
	old := `{"version":1,"containerID":"c0ffee","ifName":"eth0","kind":"macvlan","mac":"fa:16:3e:11:22:33",` +
		`"netns":"` + e.pod.Path() + `","extra":{"portID":"port-eth0"},"created":"2026-11-27T02:00:00Z"}`
	if err := os.WriteFile(filepath.Join(store.Dir(), "c0ffee@eth0.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := NewMACVLAN(store, KernelOptions{}).Detach(ctx, "c0ffee", "eth0"); err != nil {
		t.Fatalf("Detach from a version 1 checkpoint: %v", err)
	}
	if got := kernelLinks(t, e.pod); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("pod links after Detach = %v", got)
	}
	if recs, err := store.List(); err != nil || len(recs) != 0 {
		t.Fatalf("checkpoints left: %+v, %v", recs, err)
	}
}

// TestKernelDriverRefusesAnotherKindsCheckpoint: VLAN's Detach does not
// act on a MACVLAN attachment's checkpoint.
func TestKernelDriverRefusesAnotherKindsCheckpoint(t *testing.T) {
	t.Parallel()
	store := kernelStore(t)
	if err := store.Put(checkpoint.Record{ContainerID: "c1", IfName: "eth0", Kind: checkpoint.KindMACVLAN, NetNS: "/nonexistent"}); err != nil {
		t.Fatal(err)
	}
	if err := NewVLAN(store, KernelOptions{}).Detach(context.Background(), "c1", "eth0"); err == nil {
		t.Fatal("VLAN Detach acted on a macvlan checkpoint")
	}
	if _, err := store.Get("c1", "eth0"); err != nil {
		t.Fatalf("the macvlan checkpoint is gone: %v", err)
	}
}
