package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Event is one asynchronous QMP event (DEVICE_DELETED, SHUTDOWN, ...).
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

// QMPError is the error object QEMU answers a failed command with.
type QMPError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *QMPError) Error() string { return fmt.Sprintf("qmp %s: %s", e.Class, e.Desc) }

// Monitor executes QMP commands and waits for QMP events. It is what VM uses
// and what a test can fake.
type Monitor interface {
	// Execute runs cmd with args (nil for none) and decodes its "return" into
	// result (nil to discard it).
	Execute(ctx context.Context, cmd string, args, result any) error
	// EventSeq returns the number of events received so far; pass it to
	// WaitEvent to wait only for events that arrive after this point.
	EventSeq() int
	// WaitEvent returns the first event numbered after from that is called
	// name and for which match (nil matches all) is true, and its number.
	WaitEvent(ctx context.Context, from int, name string, match func(Event) bool) (Event, int, error)
	Close() error
}

var _ Monitor = (*QMP)(nil)

// QMP is a client of the QEMU Machine Protocol over a unix socket.
type QMP struct {
	conn net.Conn

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	nextID  int
	pending map[string]chan qmpReply
	events  []Event
	changed chan struct{} // closed and replaced on every event or at EOF
	readErr error
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *QMPError       `json:"error"`
}

type qmpMessage struct {
	qmpReply
	ID       string          `json:"id"`
	Event    string          `json:"event"`
	Data     json.RawMessage `json:"data"`
	Greeting json.RawMessage `json:"QMP"`
}

// DialQMP connects to the QMP socket at path, reads the greeting and
// negotiates capabilities.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("dial qmp %s: %w", path, err)
	}
	q := &QMP{conn: conn, pending: map[string]chan qmpReply{}, changed: make(chan struct{})}
	r := bufio.NewReader(conn)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read qmp greeting from %s: %w", path, err)
	}
	var greet qmpMessage
	if err := json.Unmarshal(line, &greet); err != nil || greet.Greeting == nil {
		conn.Close()
		return nil, fmt.Errorf("qmp %s: unexpected greeting %q", path, line)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go q.readLoop(r)
	if err := q.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *QMP) readLoop(r *bufio.Reader) {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			q.mu.Lock()
			q.readErr = fmt.Errorf("qmp connection: %w", err)
			for id, ch := range q.pending {
				close(ch)
				delete(q.pending, id)
			}
			close(q.changed)
			q.changed = make(chan struct{})
			q.mu.Unlock()
			return
		}
		var m qmpMessage
		if err := json.Unmarshal(line, &m); err != nil {
			continue
		}
		q.mu.Lock()
		switch {
		case m.Event != "":
			q.events = append(q.events, Event{Name: m.Event, Data: m.Data})
			close(q.changed)
			q.changed = make(chan struct{})
		case m.ID != "":
			if ch, ok := q.pending[m.ID]; ok {
				ch <- m.qmpReply
				delete(q.pending, m.ID)
			}
		}
		q.mu.Unlock()
	}
}

// Execute implements Monitor.
func (q *QMP) Execute(ctx context.Context, cmd string, args, result any) error {
	q.mu.Lock()
	if q.readErr != nil {
		err := q.readErr
		q.mu.Unlock()
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	q.nextID++
	id := fmt.Sprintf("k%d", q.nextID)
	ch := make(chan qmpReply, 1)
	q.pending[id] = ch
	q.mu.Unlock()

	msg := map[string]any{"execute": cmd, "id": id}
	if args != nil {
		msg["arguments"] = args
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("qmp %s: encode arguments: %w", cmd, err)
	}
	q.wmu.Lock()
	_, err = q.conn.Write(append(b, '\n'))
	q.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	select {
	case <-ctx.Done():
		q.mu.Lock()
		delete(q.pending, id)
		q.mu.Unlock()
		return fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	case rep, ok := <-ch:
		if !ok {
			return fmt.Errorf("qmp %s: connection closed before the reply", cmd)
		}
		if rep.Error != nil {
			return fmt.Errorf("qmp %s: %w", cmd, rep.Error)
		}
		if result != nil && rep.Return != nil {
			if err := json.Unmarshal(rep.Return, result); err != nil {
				return fmt.Errorf("qmp %s: decode reply: %w", cmd, err)
			}
		}
		return nil
	}
}

// EventSeq implements Monitor.
func (q *QMP) EventSeq() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
}

// WaitEvent implements Monitor.
func (q *QMP) WaitEvent(ctx context.Context, from int, name string, match func(Event) bool) (Event, int, error) {
	for {
		q.mu.Lock()
		for i := from; i < len(q.events); i++ {
			if e := q.events[i]; e.Name == name && (match == nil || match(e)) {
				q.mu.Unlock()
				return e, i + 1, nil
			}
		}
		from = max(from, len(q.events))
		changed, readErr := q.changed, q.readErr
		q.mu.Unlock()
		if readErr != nil {
			return Event{}, from, fmt.Errorf("wait for qmp event %s: %w", name, readErr)
		}
		select {
		case <-ctx.Done():
			return Event{}, from, fmt.Errorf("wait for qmp event %s: %w", name, ctx.Err())
		case <-changed:
		}
	}
}

// Close implements Monitor.
func (q *QMP) Close() error {
	err := q.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
