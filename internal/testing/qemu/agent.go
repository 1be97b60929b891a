package qemu

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Result is what one guest command produced.
type Result struct {
	Stdout   string
	Stderr   string
	ExitCode int
}

// Executor runs shell commands in the guest.
type Executor interface {
	// Run runs script with the guest's /bin/sh and returns its output and
	// exit code. A non-zero exit code is not an error; a broken channel is.
	Run(ctx context.Context, script string) (Result, error)
}

var _ Executor = (*Agent)(nil)

// Agent is the host end of the guest agent that hack/vm/init serves on the
// virtio-serial port "kuryr.agent". Commands run one at a time. The host
// sends "<id> <base64 script>\n"; the guest answers "@@BEGIN <id>@@", the
// base64 of stdout, "@@ERR <id>@@", the base64 of stderr and
// "@@END <id> <code>@@", each on its own lines. Answers to other IDs (of a
// command whose caller gave up) are skipped.
type Agent struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	seq  int
	tag  string
}

// NewAgent wraps a connection to the agent's chardev socket.
func NewAgent(conn net.Conn) *Agent {
	return &Agent{conn: conn, r: bufio.NewReader(conn), tag: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

// Run implements Executor. When ctx ends first, Run returns its error; the
// command may still be running in the guest, and the next Run waits behind it.
func (a *Agent) Run(ctx context.Context, script string) (Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	id := fmt.Sprintf("%s-%d", a.tag, a.seq)

	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = a.conn.SetDeadline(time.Now())
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired // the deadline must be set before it is cleared
		}
		_ = a.conn.SetDeadline(time.Time{})
	}()

	line := id + " " + base64.StdEncoding.EncodeToString([]byte(script)) + "\n"
	if _, err := a.conn.Write([]byte(line)); err != nil {
		return Result{}, a.wrap(ctx, id, err)
	}
	var (
		out, errOut strings.Builder
		cur         *strings.Builder
	)
	for {
		l, err := a.r.ReadString('\n')
		if err != nil {
			return Result{}, a.wrap(ctx, id, err)
		}
		l = strings.TrimRight(l, "\r\n")
		switch {
		case l == "@@BEGIN "+id+"@@":
			cur = &out
		case l == "@@ERR "+id+"@@":
			cur = &errOut
		case strings.HasPrefix(l, "@@END "+id+" ") && strings.HasSuffix(l, "@@"):
			code, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(l, "@@END "+id+" "), "@@"))
			if err != nil {
				return Result{}, fmt.Errorf("guest agent command %s: bad end line %q", id, l)
			}
			stdout, err := base64.StdEncoding.DecodeString(out.String())
			if err != nil {
				return Result{}, fmt.Errorf("guest agent command %s: decode stdout: %w", id, err)
			}
			stderr, err := base64.StdEncoding.DecodeString(errOut.String())
			if err != nil {
				return Result{}, fmt.Errorf("guest agent command %s: decode stderr: %w", id, err)
			}
			return Result{Stdout: string(stdout), Stderr: string(stderr), ExitCode: code}, nil
		case strings.HasPrefix(l, "@@"):
			cur = nil // another command's frame
		case cur != nil:
			cur.WriteString(l)
		}
	}
}

func (a *Agent) wrap(ctx context.Context, id string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("guest agent command %s: %w", id, ctx.Err())
	}
	return fmt.Errorf("guest agent command %s: %w", id, err)
}

// Close closes the connection.
func (a *Agent) Close() error { return a.conn.Close() }
