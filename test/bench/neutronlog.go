package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/controller"
)

// neutron-server's access log line (neutron.wsgi, INFO), e.g.
//
//	2026-11-27 03:02:01.343 20802 INFO neutron.wsgi [...] 127.0.0.1 "GET /v2.0/networks HTTP/1.1" status: 200  len: 189 time: 0.5666127
var accessLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (\d+) INFO neutron\.wsgi .*"([A-Z]+) (\S+) HTTP/[0-9.]+" status: (\d+)\s+len: \d+ time: ([0-9.]+)`)

// Request is one request neutron-server logged.
type Request struct {
	At     time.Time // when the server logged it (the request's end), local time
	Worker int       // pid of the API worker that served it
	Op     string    // e.g. "POST /v2.0/ports" (IDs replaced, query dropped)
	Query  string
	Status int
	Took   time.Duration // the server's own measure
}

// LogMark is a position in neutron-server's log.
type LogMark int64

// MarkLog returns the log's current end.
func MarkLog(path string) (LogMark, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("neutron log: %w", err)
	}
	return LogMark(st.Size()), nil
}

// ReadRequests parses the access lines logged after from.
func ReadRequests(path string, from LogMark) ([]Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("neutron log: %w", err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(int64(from), io.SeekStart); err != nil {
		return nil, fmt.Errorf("neutron log %s: %w", path, err)
	}
	return parseRequests(f)
}

func parseRequests(r io.Reader) ([]Request, error) {
	var out []Request
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		m := accessLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02 15:04:05.000", m[1], time.Local)
		if err != nil {
			return nil, fmt.Errorf("neutron log time %q: %w", m[1], err)
		}
		worker, _ := strconv.Atoi(m[2])
		status, _ := strconv.Atoi(m[5])
		secs, _ := strconv.ParseFloat(m[6], 64)
		path, query, _ := strings.Cut(m[4], "?")
		out = append(out, Request{
			At: at, Worker: worker, Op: controller.OperationName(m[3], path), Query: query,
			Status: status, Took: time.Duration(secs * float64(time.Second)),
		})
	}
	return out, sc.Err()
}

// OpStats sums requests by operation.
type OpStats struct {
	Count int
	// Busy is the server time spent on them (sum of the log's "time").
	Busy time.Duration
	// Errors counts non-2xx answers.
	Errors int
}

// ByOp groups requests by operation.
func ByOp(reqs []Request) map[string]OpStats {
	out := map[string]OpStats{}
	for _, r := range reqs {
		s := out[r.Op]
		s.Count++
		s.Busy += r.Took
		if r.Status/100 != 2 {
			s.Errors++
		}
		out[r.Op] = s
	}
	return out
}

// WriteTimeline writes requests as tab-separated lines: milliseconds since
// start (when the server finished the request), the server's own time in
// milliseconds, the API worker's pid, status, method and path with query.
func WriteTimeline(w io.Writer, start time.Time, reqs []Request) error {
	b := bufio.NewWriter(w)
	fmt.Fprintln(b, "end_ms\ttook_ms\tworker\tstatus\top\tquery")
	for _, r := range reqs {
		fmt.Fprintf(b, "%d\t%.1f\t%d\t%d\t%s\t%s\n", r.At.Sub(start).Milliseconds(),
			float64(r.Took)/float64(time.Millisecond), r.Worker, r.Status, r.Op, r.Query)
	}
	return b.Flush()
}

// Coverage returns the share of [start, end] during which at least one of
// reqs was being served (its interval is [At-Took, At]), and the largest
// number served at once: 1.0 means the client always had Neutron working
// for it, i.e. the window was bounded by Neutron's answers.
func Coverage(reqs []Request, start, end time.Time) (share float64, maxInFlight int) {
	type edge struct {
		t     time.Time
		delta int
	}
	var edges []edge
	for _, r := range reqs {
		b, e := r.At.Add(-r.Took), r.At
		if b.Before(start) {
			b = start
		}
		if e.After(end) {
			e = end
		}
		if !e.After(b) {
			continue
		}
		edges = append(edges, edge{b, 1}, edge{e, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return a.delta - b.delta // ends before starts at the same instant
	})
	var busy time.Duration
	inFlight := 0
	var since time.Time
	for _, e := range edges {
		if inFlight == 0 && e.delta > 0 {
			since = e.t
		}
		inFlight += e.delta
		maxInFlight = max(maxInFlight, inFlight)
		if inFlight == 0 {
			busy += e.t.Sub(since)
		}
	}
	if total := end.Sub(start); total > 0 {
		share = float64(busy) / float64(total)
	}
	return share, maxInFlight
}
