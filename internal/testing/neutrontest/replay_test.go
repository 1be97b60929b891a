package neutrontest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cloudsim"
)

// simDifferences are the recorded exchanges whose answers the simulation
// knowingly does not match, each with the reason. Any other difference
// fails TestSimulatorMatchesRecordedNeutron.
var simDifferences = map[string]string{
	"01-extensions": "the simulation serves no extension list: kuryr-dpdk never reads it (TestRealNeutron checks that the extensions it needs are loaded)",
}

// TestSimulatorMatchesRecordedNeutron replays every exchange recorded from
// the real Neutron (testdata/*.json, written by TestRealNeutron and
// TestRealNeutronMore with -update) against the simulated cloud, in order,
// with the IDs the simulation hands out in place of the recorded ones, and
// compares its answers field by field with the recorded ones: the status,
// every key and the type of every value (the shape), and for errors the
// NeutronError type.
func TestSimulatorMatchesRecordedNeutron(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded exchanges in testdata: %v", err)
	}
	// One run per recording (the contract test and its "more-" part),
	// each on its own simulated cloud, in file order.
	runs := map[string][]string{}
	for _, f := range files {
		run := ""
		if strings.HasPrefix(filepath.Base(f), "more-") {
			run = "more-"
		}
		runs[run] = append(runs[run], f)
	}
	for run, files := range runs {
		t.Run("recording "+run+"*", func(t *testing.T) {
			t.Parallel()
			sort.Strings(files)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sim := cloudsim.New(cloudsim.Options{NoAuth: true, NoAgent: true})
			if err := sim.Start(ctx, "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			defer sim.Close()
			ids := map[string]string{} // recorded ID -> the simulation's
			for _, f := range files {
				var rec exchange
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(b, &rec); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				status, body := replay(t, sim.NeutronURL(), rec, ids)
				diff := compareAnswer(rec, status, body)
				if reason, known := simDifferences[rec.Name]; known {
					if diff == "" {
						t.Errorf("%s: listed in simDifferences (%s) but matches now: drop it from the list", rec.Name, reason)
					}
				} else if diff != "" {
					t.Errorf("%s: %s %s: the simulation answers differently: %s", rec.Name, rec.Request.Method, rec.Request.Path, diff)
				}
				learnIDs(rec.Body, body, ids)
			}
		})
	}
}

// replay sends rec's request to the simulation with the recorded IDs
// replaced and returns the status and the decoded body.
func replay(t *testing.T, neutronURL string, rec exchange, ids map[string]string) (int, any) {
	t.Helper()
	path := substitute(strings.TrimPrefix(rec.Request.Path, "/v2.0"), ids)
	var rd io.Reader
	if rec.Request.Body != nil {
		b, err := json.Marshal(rec.Request.Body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader([]byte(substitute(string(b), ids)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, rec.Request.Method, neutronURL+"/v2.0"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rec.Request.Headers {
		req.Header.Set(k, substitute(v, ids))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", rec.Name, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var body any
	if len(raw) > 0 && json.Unmarshal(raw, &body) != nil {
		body = string(raw)
	}
	return resp.StatusCode, body
}

func substitute(s string, ids map[string]string) string {
	for from, to := range ids {
		s = strings.ReplaceAll(s, from, to)
	}
	return s
}

// learnIDs pairs the IDs in a recorded answer with those at the same place
// in the simulation's.
func learnIDs(recorded, got any, ids map[string]string) {
	switch r := recorded.(type) {
	case map[string]any:
		g, _ := got.(map[string]any)
		for k, v := range r {
			if s, ok := v.(string); ok && (k == "id" || strings.HasSuffix(k, "_id")) && len(s) == 36 {
				if gs, ok := g[k].(string); ok && gs != "" {
					ids[s] = gs
				}
				continue
			}
			learnIDs(v, g[k], ids)
		}
	case []any:
		g, _ := got.([]any)
		for i, v := range r {
			if i < len(g) {
				learnIDs(v, g[i], ids)
			}
		}
	}
}

// compareAnswer says how the simulation's answer differs from the
// recorded one ("" when it does not).
func compareAnswer(rec exchange, status int, body any) string {
	var diffs []string
	if status != rec.Status {
		diffs = append(diffs, fmt.Sprintf("status %d, recorded %d", status, rec.Status))
	}
	if rec.RawBody != nil && rec.Body == nil {
		if s, _ := body.(string); body != nil && s != *rec.RawBody {
			diffs = append(diffs, fmt.Sprintf("body %v, recorded %q", body, *rec.RawBody))
		}
	} else if d := shapeDiff("body", shape(rec.Body), shape(body)); d != "" {
		diffs = append(diffs, d)
	}
	if want := get(rec.Body, "NeutronError", "type"); want != nil && get(body, "NeutronError", "type") != want {
		diffs = append(diffs, fmt.Sprintf("error type %v, recorded %v", get(body, "NeutronError", "type"), want))
	}
	return strings.Join(diffs, "; ")
}
