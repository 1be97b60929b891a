package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeQMP serves one QMP connection on a unix socket: the greeting, then
// handle(cmd, args) for each command, whose answer it sends back with the
// command's id. Events written to the events channel are sent as they come.
type fakeQMP struct {
	path   string
	events chan string
	cmds   chan string
}

func newFakeQMP(t *testing.T, handle func(cmd string, args json.RawMessage) (any, *QMPError)) *fakeQMP {
	t.Helper()
	f := &fakeQMP{path: filepath.Join(t.TempDir(), "qmp.sock"), events: make(chan string, 10), cmds: make(chan string, 100)}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		out := make(chan []byte, 10)
		go func() {
			for b := range out {
				if _, err := c.Write(append(b, '\n')); err != nil {
					return
				}
			}
		}()
		out <- []byte(`{"QMP": {"version": {"qemu": {"major": 7, "minor": 2}}, "capabilities": []}}`)
		go func() {
			for e := range f.events {
				out <- []byte(e)
			}
		}()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var m struct {
				Execute   string          `json:"execute"`
				ID        string          `json:"id"`
				Arguments json.RawMessage `json:"arguments"`
			}
			if err := json.Unmarshal(line, &m); err != nil {
				return
			}
			f.cmds <- m.Execute
			ret, qerr := any(map[string]any{}), (*QMPError)(nil)
			if m.Execute != "qmp_capabilities" {
				ret, qerr = handle(m.Execute, m.Arguments)
			}
			rep := map[string]any{"id": m.ID}
			if qerr != nil {
				rep["error"] = qerr
			} else {
				rep["return"] = ret
			}
			b, _ := json.Marshal(rep)
			out <- b
		}
	}()
	return f
}

func TestQMPExecuteAndEvents(t *testing.T) {
	f := newFakeQMP(t, func(cmd string, args json.RawMessage) (any, *QMPError) {
		switch cmd {
		case "query-status":
			return map[string]any{"status": "running", "running": true}, nil
		case "device_add":
			var a struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(args, &a)
			if a.ID == "dup" {
				return nil, &QMPError{Class: "GenericError", Desc: "Duplicate device ID 'dup'"}
			}
			return map[string]any{}, nil
		}
		return nil, &QMPError{Class: "CommandNotFound", Desc: "The command " + cmd + " has not been found"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := DialQMP(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if got := <-f.cmds; got != "qmp_capabilities" {
		t.Fatalf("first command: got %q, want qmp_capabilities", got)
	}

	var st struct {
		Status string `json:"status"`
	}
	if err := q.Execute(ctx, "query-status", nil, &st); err != nil || st.Status != "running" {
		t.Fatalf("query-status: %+v, %v", st, err)
	}
	err = q.Execute(ctx, "device_add", map[string]any{"id": "dup"}, nil)
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "GenericError" || !strings.Contains(err.Error(), "device_add") {
		t.Fatalf("device_add dup: got %v, want a GenericError naming the command", err)
	}

	// An event that came before the wait is found when waiting from 0, and
	// skipped when waiting from after it.
	f.events <- `{"event": "DEVICE_DELETED", "data": {"device": "a", "path": "/machine/peripheral/a"}}`
	byDevice := func(id string) func(Event) bool {
		return func(e Event) bool {
			var d struct{ Device string }
			return json.Unmarshal(e.Data, &d) == nil && d.Device == id
		}
	}
	_, next, err := q.WaitEvent(ctx, 0, "DEVICE_DELETED", byDevice("a"))
	if err != nil || next != 1 {
		t.Fatalf("wait for a: next %d, %v", next, err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.events <- `{"event": "DEVICE_DELETED", "data": {"device": "b"}}`
	}()
	if _, _, err := q.WaitEvent(ctx, next, "DEVICE_DELETED", byDevice("b")); err != nil {
		t.Fatalf("wait for b: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if _, _, err := q.WaitEvent(short, next, "DEVICE_DELETED", byDevice("a")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for an old event after it: got %v, want deadline exceeded", err)
	}
}

func TestQMPConnectionLost(t *testing.T) {
	release := make(chan struct{})
	f := newFakeQMP(t, func(cmd string, _ json.RawMessage) (any, *QMPError) {
		<-release
		return map[string]any{}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := DialQMP(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- q.Execute(ctx, "query-status", nil, nil) }()
	go func() { _, _, err := q.WaitEvent(ctx, 0, "SHUTDOWN", nil); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	q.Close()
	for range 2 {
		if err := <-errc; err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("after the connection closed: got %v, want a connection error", err)
		}
	}
	close(release)
}

func TestDialQMPBadGreeting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("{\"hello\": 1}\n"))
			time.Sleep(time.Second)
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := DialQMP(ctx, path); err == nil || !strings.Contains(err.Error(), "greeting") {
		t.Fatalf("got %v, want an unexpected greeting error", err)
	}
}
