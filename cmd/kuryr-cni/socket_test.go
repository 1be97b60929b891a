package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// TestDaemonSocketFromConfigIsRefused performs the NAD author's socket
// redirect: under Multus the shim's stdin is a NetworkAttachmentDefinition's
// spec.config, and this one names a socket of its author's, where a fake
// daemon listens. ADD, CHECK and GC are refused with code 7 naming
// daemonSocket and reach neither socket; DEL goes, best effort, to the
// node's daemon (the socket of the node-local file) and never to the
// other one. A configuration without daemonSocket, or with the node's, is
// served by the node's daemon.
func TestDaemonSocketFromConfigIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "1.1.0")
	node, attacker := &recorder{}, &recorder{}
	serve(t, node, h.socket)
	evil := filepath.Join(t.TempDir(), "evil.sock")
	serve(t, attacker, evil)

	nad := func(socketField string) *libcni.NetworkConfigList {
		t.Helper()
		list, err := libcni.NetworkConfFromBytes([]byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"dataplane","plugins":[{"type":"kuryr-cni",
			%s"driver":"nested-dpdk","subnetId":"6a2d7ffc-1c87-4d4b-9d2f-4b0f4a39d2e1"}]}`, socketField)))
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	redirect := nad(fmt.Sprintf(`"daemonSocket":%q,`, evil))
	ctx := context.Background()
	_, err := h.cni.AddNetworkList(ctx, redirect, h.rt)
	e := cniErr(t, "ADD with another daemonSocket", err, cniapi.CodeBadConfig)
	if !strings.Contains(e.Msg, "daemonSocket") || !strings.Contains(e.Msg, h.socket) {
		t.Fatalf("message %q names neither the field nor the node's socket", e.Msg)
	}
	err = h.cni.GCNetworkList(ctx, redirect, &libcni.GCArgs{})
	cniErr(t, "GC with another daemonSocket", err, cniapi.CodeBadConfig)
	if err := h.cni.DelNetworkList(ctx, redirect, h.rt); err != nil {
		t.Fatalf("DEL with another daemonSocket: %v", err)
	}
	if got := attacker.take(); len(got) != 0 {
		t.Fatalf("the configuration's socket received %d requests", len(got))
	}
	if got := node.take(); len(got) != 1 || got[0].Command != cniapi.CmdDel {
		t.Fatalf("the node's daemon received %+v, want only the DEL", got)
	}

	for _, field := range []string{"", fmt.Sprintf(`"daemonSocket":%q,`, h.socket)} {
		if _, err := h.cni.AddNetworkList(ctx, nad(field), h.rt); err != nil {
			t.Fatalf("ADD with %q: %v", field, err)
		}
	}
	if got := node.take(); len(got) != 2 {
		t.Fatalf("the node's daemon received %d requests, want the 2 ADDs", len(got))
	}

	// A node-local file that does not parse is the node's fault: code 7
	// naming the file.
	bad := filepath.Join(h.binDir, cniapi.NodeConfigName)
	if err := os.WriteFile(bad, []byte(`{"daemonSocket":"relative.sock"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = h.cni.AddNetworkList(ctx, nad(""), h.rt)
	if e := cniErr(t, "ADD with a bad node file", err, cniapi.CodeBadConfig); !strings.Contains(e.Msg, bad) {
		t.Fatalf("message %q does not name %s", e.Msg, bad)
	}
}
