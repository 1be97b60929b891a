package cloudsim

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

// Latency delays every request of an operation by Fixed plus a uniformly
// distributed extra in [0, Jitter).
type Latency struct {
	Fixed  time.Duration `json:"fixed,omitempty"`
	Jitter time.Duration `json:"jitter,omitempty"`
}

// Fault makes a fraction of the requests of an operation fail.
type Fault struct {
	// Rate is the probability, 0 to 1, that a request fails.
	Rate float64 `json:"rate"`
	// Status is the HTTP status a failed request gets; 500 when zero.
	// 409 simulates conflicts, 503 or 429 an overloaded cloud.
	Status int `json:"status,omitempty"`
	// After applies the operation first and then answers with the error:
	// the cloud did the work but the client cannot know (a lost answer).
	After bool `json:"after,omitempty"`
	// Hang sends no answer at all: the server waits until the client goes
	// away (or HangFor passes) and drops the connection.
	Hang bool `json:"hang,omitempty"`
	// HangFor bounds a hang; 30 s when zero.
	HangFor time.Duration `json:"hangFor,omitempty"`
}

// lookup returns the entry for op in m: the exact name, else the longest
// "prefix.*" pattern that matches, else "*".
func lookup[T any](m map[string]T, op string) (T, bool) {
	if v, ok := m[op]; ok {
		return v, true
	}
	best, found := "", false
	var bv T
	for k, v := range m {
		if strings.HasSuffix(k, ".*") && strings.HasPrefix(op, strings.TrimSuffix(k, "*")) && len(k) > len(best) {
			best, bv, found = k, v, true
		}
	}
	if found {
		return bv, true
	}
	v, ok := m["*"]
	return v, ok
}

// SetFault sets (or, with a zero Fault, clears) the fault of op ("*" for
// every operation, "neutron.ports.*" for a family).
func (c *Cloud) SetFault(op string, f Fault) {
	c.knobs.Lock()
	defer c.knobs.Unlock()
	if f.Rate <= 0 {
		delete(c.faults, op)
		return
	}
	c.faults[op] = f
}

// SetLatency sets (or, with a zero Latency, clears) the latency of op.
func (c *Cloud) SetLatency(op string, l Latency) {
	c.knobs.Lock()
	defer c.knobs.Unlock()
	if l == (Latency{}) {
		delete(c.latency, op)
		return
	}
	c.latency[op] = l
}

// decide returns the delay and, if the request is to fail, its fault.
func (c *Cloud) decide(op string) (time.Duration, *Fault) {
	c.knobs.Lock()
	defer c.knobs.Unlock()
	var d time.Duration
	if l, ok := lookup(c.latency, op); ok {
		d = l.Fixed
		if l.Jitter > 0 {
			d += time.Duration(c.rng.Int64N(int64(l.Jitter)))
		}
	}
	if f, ok := lookup(c.faults, op); ok && c.rng.Float64() < f.Rate {
		return d, &f
	}
	return d, nil
}

// newRNG returns the random source of the knobs: seeded when seed is
// non-zero, for reproducible runs.
func newRNG(seed uint64) *rand.Rand {
	if seed == 0 {
		return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// serveWithFault runs next under fault f for operation op.
func (c *Cloud) serveWithFault(w http.ResponseWriter, r *http.Request, op string, f *Fault, next http.Handler) {
	c.countFault(op)
	if f.Hang {
		d := f.HangFor
		if d <= 0 {
			d = 30 * time.Second
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		case <-c.closing:
		}
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
			}
		}
		return
	}
	if f.After {
		next.ServeHTTP(httptest.NewRecorder(), r)
	}
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeServiceError(w, op, status, "injected fault on "+op)
}
