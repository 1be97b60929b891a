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
	c.mux.HandleFunc("PUT /cloudsim/faults/{op}", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if !decodeControl(w, r, &f) {
			return
		}
		c.SetFault(r.PathValue("op"), f)
		w.WriteHeader(http.StatusNoContent)
	})
	c.mux.HandleFunc("DELETE /cloudsim/faults/{op}", func(w http.ResponseWriter, r *http.Request) {
		c.SetFault(r.PathValue("op"), Fault{})
		w.WriteHeader(http.StatusNoContent)
	})
	c.mux.HandleFunc("PUT /cloudsim/latency/{op}", func(w http.ResponseWriter, r *http.Request) {
		var l Latency
		if !decodeControl(w, r, &l) {
			return
		}
		c.SetLatency(r.PathValue("op"), l)
		w.WriteHeader(http.StatusNoContent)
	})
	c.mux.HandleFunc("DELETE /cloudsim/latency/{op}", func(w http.ResponseWriter, r *http.Request) {
		c.SetLatency(r.PathValue("op"), Latency{})
		w.WriteHeader(http.StatusNoContent)
	})
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
