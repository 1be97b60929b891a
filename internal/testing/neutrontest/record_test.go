package neutrontest

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// With -update, the contract test writes every exchange it made with the real
// Neutron to testdata/NN-name.json; without it, it checks that each response
// still has the status and the JSON shape (keys and value types) recorded
// there.
var update = flag.Bool("update", false, "rewrite testdata/*.json from the real Neutron")

// exchange is one request to Neutron and its answer, as stored in testdata.
type exchange struct {
	Name    string   `json:"name"`
	Request request  `json:"request"`
	Status  int      `json:"status"`
	Headers []string `json:"response_headers"`
	Body    any      `json:"body"` // decoded JSON, a string if not JSON, nil if empty
	// RawBody is the body as sent when it is not a JSON object (e.g. the
	// literal null that PUT /ports/{id}/tags/{tag} answers, or nothing).
	RawBody *string `json:"raw_body,omitempty"`
}

type request struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

// api makes requests with plain net/http and records them.
type api struct {
	t         *testing.T
	base      string // ends in /v2.0
	prefix    string // of the testdata file names
	exchanges []exchange
}

// do sends body (JSON-encoded if not nil) and fails t unless the status is
// want; it returns the decoded response body (nil if empty or not an object).
func (a *api) do(name, method, path string, hdr map[string]string, body any, want int) map[string]any {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatalf("%s: encode body: %v", name, err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		a.t.Fatalf("%s: %v", name, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s: %s %s: %v", name, method, path, err)
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		a.t.Fatalf("%s: read body: %v", name, err)
	}
	var decoded any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &decoded); err != nil {
			decoded = string(raw)
		}
	}
	var headers []string
	for k := range resp.Header {
		headers = append(headers, k+": "+resp.Header.Get(k))
	}
	sort.Strings(headers)
	ex := exchange{
		Name:    fmt.Sprintf("%s%02d-%s", a.prefix, len(a.exchanges)+1, name),
		Request: request{Method: method, Path: "/v2.0" + path, Headers: hdr, Body: body},
		Status:  resp.StatusCode,
		Headers: headers,
		Body:    decoded,
	}
	if _, isObject := decoded.(map[string]any); !isObject {
		s := string(raw)
		ex.RawBody = &s
	}
	a.exchanges = append(a.exchanges, ex)
	if resp.StatusCode != want {
		a.t.Fatalf("%s: %s %s: status %d, want %d; body: %s", name, method, path, resp.StatusCode, want, raw)
	}
	m, _ := decoded.(map[string]any)
	return m
}

// finish writes the exchanges to testdata (with -update) or compares them
// with what is recorded there.
func (a *api) finish() {
	a.t.Helper()
	for _, ex := range a.exchanges {
		file := filepath.Join("testdata", ex.Name+".json")
		if *update {
			b, err := json.MarshalIndent(ex, "", "  ")
			if err != nil {
				a.t.Fatalf("encode %s: %v", file, err)
			}
			if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
				a.t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			a.t.Errorf("%v (run the test with -update against a real Neutron to record it)", err)
			continue
		}
		var rec exchange
		if err := json.Unmarshal(b, &rec); err != nil {
			a.t.Errorf("decode %s: %v", file, err)
			continue
		}
		if rec.Status != ex.Status {
			a.t.Errorf("%s: status %d, recorded %d", ex.Name, ex.Status, rec.Status)
		}
		if (rec.RawBody == nil) != (ex.RawBody == nil) || rec.RawBody != nil && *rec.RawBody != *ex.RawBody && rec.Body == nil {
			a.t.Errorf("%s: raw body %s, recorded %s", ex.Name, quoted(ex.RawBody), quoted(rec.RawBody))
		}
		if d := shapeDiff("body", shape(rec.Body), shape(ex.Body)); d != "" {
			a.t.Errorf("%s: response shape differs from %s: %s", ex.Name, file, d)
		}
	}
}

func quoted(s *string) string {
	if s == nil {
		return "(a JSON object)"
	}
	return fmt.Sprintf("%q", *s)
}

// shape reduces a decoded JSON value to its structure: objects keep their
// keys, arrays their first element, scalars become their type name.
func shape(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = shape(e)
		}
		return m
	case []any:
		if len(v) == 0 {
			return []any{}
		}
		return []any{shape(v[0])}
	case nil:
		return "null"
	default:
		return reflect.TypeOf(v).Kind().String()
	}
}

// shapeDiff says where shapes want and got first differ ("" if they do not).
func shapeDiff(path string, want, got any) string {
	wm, wok := want.(map[string]any)
	gm, gok := got.(map[string]any)
	if wok && gok {
		var diffs []string
		for k, w := range wm {
			g, ok := gm[k]
			if !ok {
				diffs = append(diffs, path+"."+k+" missing")
				continue
			}
			if d := shapeDiff(path+"."+k, w, g); d != "" {
				diffs = append(diffs, d)
			}
		}
		for k := range gm {
			if _, ok := wm[k]; !ok {
				diffs = append(diffs, path+"."+k+" not recorded")
			}
		}
		sort.Strings(diffs)
		return strings.Join(diffs, "; ")
	}
	wa, waok := want.([]any)
	ga, gaok := got.([]any)
	if waok && gaok {
		if len(wa) == 0 || len(ga) == 0 {
			if len(wa) != len(ga) {
				return fmt.Sprintf("%s: %d elements shown, recorded %d", path, len(ga), len(wa))
			}
			return ""
		}
		return shapeDiff(path+"[0]", wa[0], ga[0])
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Sprintf("%s: %v, recorded %v", path, got, want)
	}
	return ""
}

func TestShapeDiff(t *testing.T) {
	t.Parallel()
	dec := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{`{"port":{"id":"x","tags":["a"]}}`, `{"port":{"id":"y","tags":["b","c"]}}`, true},
		{`{"port":{"id":"x"}}`, `{"port":{"id":"x","status":"DOWN"}}`, false},
		{`{"port":{"id":"x","mtu":1}}`, `{"port":{"id":"x","mtu":"1"}}`, false},
		{`{"a":null}`, `{"a":"s"}`, false},
		{`{"a":[]}`, `{"a":[{"b":1}]}`, false},
		{`{"a":[{"b":1}]}`, `{"a":[{"c":1}]}`, false},
	} {
		d := shapeDiff("body", shape(dec(tc.a)), shape(dec(tc.b)))
		if (d == "") != tc.same {
			t.Errorf("shapeDiff(%s, %s) = %q, want same=%v", tc.a, tc.b, d, tc.same)
		}
	}
}
