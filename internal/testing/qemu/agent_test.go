package qemu

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeGuest speaks the guest side of the agent protocol over conn: it
// "runs" a script by looking it up in scripts. Before answering a script
// called "stale" it first sends a frame for another ID, as a guest does when
// an earlier caller gave up.
func fakeGuest(conn net.Conn, scripts map[string]Result, hold <-chan struct{}) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		id, b64, _ := strings.Cut(strings.TrimSpace(line), " ")
		script, _ := base64.StdEncoding.DecodeString(b64)
		if string(script) == "hold" {
			<-hold
		}
		res := scripts[string(script)]
		var b strings.Builder
		if string(script) == "stale" {
			fmt.Fprintf(&b, "@@BEGIN old-1@@\n%s\n@@ERR old-1@@\n@@END old-1 0@@\n", base64.StdEncoding.EncodeToString([]byte("stale output")))
		}
		fmt.Fprintf(&b, "noise from a console\n@@BEGIN %s@@\n", id)
		out := base64.StdEncoding.EncodeToString([]byte(res.Stdout))
		for len(out) > 76 { // busybox base64 wraps its output
			b.WriteString(out[:76] + "\n")
			out = out[76:]
		}
		fmt.Fprintf(&b, "%s\n@@ERR %s@@\n%s\n@@END %s %d@@\n", out, id, base64.StdEncoding.EncodeToString([]byte(res.Stderr)), id, res.ExitCode)
		if _, err := conn.Write([]byte(b.String())); err != nil {
			return
		}
	}
}

// socketPair returns two ends of a unix socket connection: buffered like
// the agent's chardev socket (net.Pipe is not).
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	host, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	guest := <-accepted
	if guest == nil {
		t.Fatal("accept failed")
	}
	return host, guest
}

func TestAgentRun(t *testing.T) {
	host, guest := socketPair(t)
	long := strings.Repeat("0123456789", 50) + "\n"
	hold := make(chan struct{})
	go fakeGuest(guest, map[string]Result{
		"echo hi; exit 3": {Stdout: "hi\n", Stderr: "warn\n", ExitCode: 3},
		"long":            {Stdout: long},
		"stale":           {Stdout: "fresh\n"},
		"hold":            {Stdout: "late\n"},
	}, hold)
	a := NewAgent(host)
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, tc := range []struct {
		script string
		want   Result
	}{
		{"echo hi; exit 3", Result{Stdout: "hi\n", Stderr: "warn\n", ExitCode: 3}},
		{"long", Result{Stdout: long}},
		{"stale", Result{Stdout: "fresh\n"}},
	} {
		got, err := a.Run(ctx, tc.script)
		if err != nil || got != tc.want {
			t.Errorf("Run(%q) = %+v, %v; want %+v", tc.script, got, err, tc.want)
		}
	}

	// A caller that gives up gets its context's error; the next command
	// skips the late answer and gets its own.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if _, err := a.Run(short, "hold"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run with an expired context: got %v, want deadline exceeded", err)
	}
	close(hold)
	got, err := a.Run(ctx, "long")
	if err != nil || got.Stdout != long {
		t.Fatalf("Run after a timeout: got %+v, %v", got, err)
	}
}

func TestAgentRunBrokenChannel(t *testing.T) {
	host, guest := socketPair(t)
	guest.Close()
	a := NewAgent(host)
	if _, err := a.Run(context.Background(), "true"); err == nil {
		t.Fatal("Run on a closed channel succeeded")
	}
}
