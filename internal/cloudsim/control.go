package cloudsim

import (
	"encoding/json"
	"io"
	"net/http"
)

// The control API (not OpenStack; not counted, no token) lets scripts and
// benchmarks read counters and turn knobs of a running cloud:
//
//	GET    /cloudsim/counts          {"counts": {op: n}, "faults": {op: n}}
//	DELETE /cloudsim/counts          reset the counters
//	PUT    /cloudsim/faults/{op}     body: a Fault, e.g. {"rate": 0.3, "status": 503}
//	DELETE /cloudsim/faults/{op}
//	PUT    /cloudsim/latency/{op}    body: a Latency, e.g. {"fixed": "50ms", "jitter": "20ms"}
//	DELETE /cloudsim/latency/{op}
//	GET    /cloudsim/operations      the operation names
func (c *Cloud) routeControl() {
	c.mux.HandleFunc("GET /cloudsim/counts", func(w http.ResponseWriter, r *http.Request) {
		c.countMu.Lock()
		faults := make(map[string]int64, len(c.faulted))
		for k, v := range c.faulted {
			faults[k] = v
		}
		c.countMu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"counts": c.Counts(), "faults": faults})
	})
	c.mux.HandleFunc("DELETE /cloudsim/counts", func(w http.ResponseWriter, r *http.Request) {
		c.ResetCounts()
		w.WriteHeader(http.StatusNoContent)
	})
	c.mux.HandleFunc("GET /cloudsim/operations", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"operations": c.Operations()})
	})
	c.mux.HandleFunc("PUT /cloudsim/faults/{op}", setKnob(c.SetFault))
	c.mux.HandleFunc("DELETE /cloudsim/faults/{op}", clearKnob(c.SetFault))
	c.mux.HandleFunc("PUT /cloudsim/latency/{op}", setKnob(c.SetLatency))
	c.mux.HandleFunc("DELETE /cloudsim/latency/{op}", clearKnob(c.SetLatency))
}

// setKnob answers PUT /cloudsim/<knob>/{op}: the body is the knob's value
// for op (400 if it does not decode), then 204.
func setKnob[T any](set func(op string, v T)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var v T
		if !decodeControl(w, r, &v) {
			return
		}
		set(r.PathValue("op"), v)
		w.WriteHeader(http.StatusNoContent)
	}
}

// clearKnob answers DELETE /cloudsim/<knob>/{op}: op's knob back to its
// zero value, then 204.
func clearKnob[T any](set func(op string, v T)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var zero T
		set(r.PathValue("op"), zero)
		w.WriteHeader(http.StatusNoContent)
	}
}

func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return false
	}
	return true
}
