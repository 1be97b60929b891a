package bench

import (
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

func TestParseRequests(t *testing.T) {
	log := `2026-11-27 03:02:00.589 20803 INFO neutron.wsgi [-] (20803) wsgi starting up on http://127.0.0.1:19696
2026-11-27 03:07:31.783 21550 INFO neutron.wsgi [None req-6bf7 - fake_project_id - - - -] 127.0.0.1 "GET /v2.0/ports?tags=kuryr-cluster%3Dbench HTTP/1.1" status: 200  len: 1189 time: 0.0345000
2026-11-27 03:07:31.904 21551 INFO neutron.wsgi [None req-f876 - fake_project_id - - - -] 127.0.0.1 "PUT /v2.0/trunks/d393f812-ecb8-43bd-8123-dc6c44bdab77/add_subports HTTP/1.1" status: 409  len: 300 time: 1.5
2026-11-27 03:07:32.000 21551 WARNING neutron.scheduler.dhcp_agent_scheduler [None req-x] No more DHCP agents
`
	reqs, err := parseRequests(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2: %+v", len(reqs), reqs)
	}
	if r := reqs[0]; r.Op != "GET /v2.0/ports" || r.Query != "tags=kuryr-cluster%3Dbench" || r.Status != 200 ||
		r.Worker != 21550 || r.Took != 34500*time.Microsecond {
		t.Errorf("first request = %+v", r)
	}
	if r := reqs[1]; r.Op != "PUT /v2.0/trunks/{id}/add_subports" || r.Status != 409 || r.Took != 1500*time.Millisecond {
		t.Errorf("second request = %+v", r)
	}
	ops := ByOp(reqs)
	if s := ops["PUT /v2.0/trunks/{id}/add_subports"]; s.Count != 1 || s.Errors != 1 {
		t.Errorf("add_subports stats = %+v, want 1 request, 1 error", s)
	}
}

func TestReadRequestsFromMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "neutron-server.log")
	line := `2026-11-27 03:07:31.783 1 INFO neutron.wsgi [x] 127.0.0.1 "GET /v2.0/networks HTTP/1.1" status: 200  len: 1 time: 0.1` + "\n"
	if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	mark, err := MarkLog(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.Replace(line, "GET /v2.0/networks", "POST /v2.0/ports", 1)); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	reqs, err := ReadRequests(path, mark)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || reqs[0].Op != "POST /v2.0/ports" {
		t.Fatalf("after the mark: %+v, want only the POST", reqs)
	}
}

func TestParseCounter(t *testing.T) {
	text := `# HELP kuryr_openstack_requests_total OpenStack API requests.
# TYPE kuryr_openstack_requests_total counter
kuryr_openstack_requests_total{code="201",op="POST /v2.0/ports"} 3
kuryr_openstack_requests_total{code="409",op="PUT /v2.0/trunks/{id}/add_subports"} 1
kuryr_openstack_requests_total_other 7
kuryr_openstack_request_duration_seconds_count{op="POST /v2.0/ports"} 3
`
	got, err := parseCounter(strings.NewReader(text), "kuryr_openstack_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %v, want two series", got)
	}
	before := map[string]float64{`code="201",op="POST /v2.0/ports"`: 1}
	d := CounterDelta(before, got)
	if d[`code="201",op="POST /v2.0/ports"`] != 2 {
		t.Errorf("delta = %v", d)
	}
	for labels, want := range map[string]string{
		`code="201",op="POST /v2.0/ports"`:                   "POST /v2.0/ports",
		`code="409",op="PUT /v2.0/trunks/{id}/add_subports"`: "PUT /v2.0/trunks/{id}/add_subports (409)",
		`code="error",op="GET /v2.0/ports"`:                  "GET /v2.0/ports (error)",
		`op="GET /v2.0/ports?x=a,b",code="200"`:              "GET /v2.0/ports?x=a,b",
	} {
		if op := OpOf(labels); op != want {
			t.Errorf("OpOf(%s) = %q, want %q", labels, op, want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 10; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	for p, want := range map[float64]time.Duration{50: 5 * time.Second, 90: 9 * time.Second, 100: 10 * time.Second, 1: time.Second} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%v = %s, want %s", p, got, want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
	if ds[0] != 10*time.Second {
		t.Error("Percentile sorted its input in place")
	}
}

func TestCoverage(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(endMS, tookMS int) Request {
		return Request{At: start.Add(time.Duration(endMS) * time.Millisecond), Took: time.Duration(tookMS) * time.Millisecond}
	}
	// [0,100] and [50,150] overlap, [300,400] alone; window 0..1000.
	share, inFlight := Coverage([]Request{at(100, 100), at(150, 100), at(400, 100)}, start, start.Add(time.Second))
	if share < 0.249 || share > 0.251 || inFlight != 2 {
		t.Errorf("coverage = %v, %d; want 0.25, 2", share, inFlight)
	}
}

func TestReadMemory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	status := "Name:\tkuryr-controller\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\nRssAnon:\t   8192 kB\nRssFile:\t   12288 kB\n"
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMemory(root, 42)
	if err != nil {
		t.Fatal(err)
	}
	if m.Peak != 40<<20 || m.RSS != 20<<20 || m.Anon != 8<<20 || m.File != 12<<20 {
		t.Errorf("memory = %+v", m)
	}
	if _, err := ReadMemory(root, 43); err == nil {
		t.Error("no error for a missing pid")
	}
	stat := "42 (kuryr controller) S 1 42 42 0 -1 0 0 0 0 0 150 50 10 0 20 0 1 0 100 0 5 0\n"
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	cpu, rss, err := GroupCPU(root, 42)
	if err != nil {
		t.Fatal(err)
	}
	if cpu != 2.1 || rss != 20<<20 {
		t.Errorf("group cpu = %v s, rss %d; want 2.1 s, %d", cpu, rss, 20<<20)
	}
	if cpu, _, _ := GroupCPU(root, 7); cpu != 0 {
		t.Errorf("another group's cpu = %v", cpu)
	}
}

func sampleResults() []Result {
	start := time.Now()
	return []Result{
		{Name: "N=1", N: 1, Latency: []time.Duration{400 * time.Millisecond}, Planned: []time.Duration{30 * time.Millisecond},
			Wall: 400 * time.Millisecond, Start: start,
			Neutron:  map[string]OpStats{"POST /v2.0/ports": {Count: 1, Busy: 300 * time.Millisecond}},
			Requests: []Request{{At: start.Add(350 * time.Millisecond), Took: 300 * time.Millisecond, Op: "POST /v2.0/ports"}},
			Metrics:  map[string]float64{"POST /v2.0/ports": 1}, Memory: Memory{RSS: 30 << 20, Peak: 32 << 20}},
		{Name: "N=10 <&>", N: 10, Latency: []time.Duration{time.Second, 3 * time.Second}, Wall: 3 * time.Second, Start: start,
			Neutron: map[string]OpStats{"POST /v2.0/ports": {Count: 10, Busy: 5 * time.Second, Errors: 2}}},
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b strings.Builder
	if err := WriteMarkdown(&b, sampleResults()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"| N=1 | 1 | 400 ms | 400 ms | 400 ms | 400 ms | 1.00 | 1.00 | 30.0 / 32.0 MiB (0.0 + 0.0; 0.0 MiB) |",
		"| `POST /v2.0/ports` | 1.00 (300 ms) | 1.00 (500 ms, 2 non-2xx) |", "| N=1 | 30 ms / 30 ms | 350 ms | 400 ms | 75% | 1 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteSVG(t *testing.T) {
	var b strings.Builder
	if err := WriteSVG(&b, "title <x>", sampleResults()); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(b.String()))
	rects := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, b.String())
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// background + 3 bars per round + 3 legend boxes
	if want := 1 + 3*2 + 3; rects != want {
		t.Errorf("%d rects, want %d", rects, want)
	}
}

func TestDecadeFloor(t *testing.T) {
	for v, want := range map[float64]float64{0.3: 0.1, 1: 1, 7: 1, 120: 100, 18133: 10000, 500: 100} {
		if got := decadeFloor(v); math.Abs(got-want) > 1e-9 {
			t.Errorf("decadeFloor(%v) = %v, want %v", v, got, want)
		}
	}
}

func TestReady(t *testing.T) {
	ready := func(states []v1alpha1.InterfaceState, cond metav1.ConditionStatus, requested int) bool {
		kp := &v1alpha1.KuryrPod{}
		for range requested {
			kp.Spec.Interfaces = append(kp.Spec.Interfaces, v1alpha1.InterfaceRequest{})
		}
		for _, s := range states {
			kp.Status.Interfaces = append(kp.Status.Interfaces, v1alpha1.InterfaceStatus{State: s})
		}
		kp.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: cond}}
		return Ready(kp)
	}
	active := v1alpha1.StateActive
	for name, c := range map[string]struct {
		states    []v1alpha1.InterfaceState
		cond      metav1.ConditionStatus
		requested int
		want      bool
	}{
		"all active":              {[]v1alpha1.InterfaceState{active, active}, metav1.ConditionTrue, 2, true},
		"one pending":             {[]v1alpha1.InterfaceState{active, v1alpha1.StatePending}, metav1.ConditionTrue, 2, false},
		"not ready":               {[]v1alpha1.InterfaceState{active}, metav1.ConditionFalse, 1, false},
		"fewer than requested":    {[]v1alpha1.InterfaceState{active}, metav1.ConditionTrue, 2, false},
		"no interfaces":           {nil, metav1.ConditionTrue, 0, false},
		"plugged is not 'Active'": {[]v1alpha1.InterfaceState{v1alpha1.StatePlugged}, metav1.ConditionTrue, 1, false},
	} {
		if got := ready(c.states, c.cond, c.requested); got != c.want {
			t.Errorf("%s: Ready = %v, want %v", name, got, c.want)
		}
	}
}
