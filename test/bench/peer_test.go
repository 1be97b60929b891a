package bench

import (
	"strings"
	"testing"
	"time"
)

func TestKuryrPortReady(t *testing.T) {
	t.Parallel()
	vif := func(active bool) map[string]any {
		return map[string]any{"default": true, "vif": map[string]any{
			"versioned_object.name": "VIFVlanNested",
			"versioned_object.data": map[string]any{"active": active, "vlan_id": int64(7)},
		}}
	}
	for _, tc := range []struct {
		name string
		kp   map[string]any
		want bool
	}{
		{"no status", map[string]any{}, false},
		{"no vifs yet", map[string]any{"status": map[string]any{"vifs": map[string]any{}}}, false},
		{"inactive", map[string]any{"status": map[string]any{"vifs": map[string]any{"eth0": vif(false)}}}, false},
		{"one of two active", map[string]any{"status": map[string]any{"vifs": map[string]any{"eth0": vif(true), "eth1": vif(false)}}}, false},
		{"active", map[string]any{"status": map[string]any{"vifs": map[string]any{"eth0": vif(true)}}}, true},
	} {
		if got := KuryrPortReady(tc.kp); got != tc.want {
			t.Errorf("%s: KuryrPortReady = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWritePeerTable(t *testing.T) {
	t.Parallel()
	round := func(name string, lat ...time.Duration) Result {
		return Result{Name: name, N: len(lat), Latency: lat, Wall: lat[len(lat)-1],
			Neutron: map[string]OpStats{"POST /v2.0/ports": {Count: 2 * len(lat)}}, Memory: Memory{Peak: 30 << 20, Anon: 8 << 20, File: 20 << 20}}
	}
	runs := []Run{
		{Name: "ours", Results: []Result{round("N=1", time.Second), round("N=2", time.Second, 2*time.Second)}},
		{Name: "peer", Results: []Result{round("N=1", 4*time.Second)}},
		{Name: "ours, pooled", NotMeasured: "not merged"},
	}
	var b strings.Builder
	if err := WritePeerTable(&b, runs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| N=1 | ours | 1000 ms | 1000 ms | 1000 ms | 2.00 | 30.0 MiB | 8.0 + 20.0 MiB | 1.0× | 1.0× | 1.0× |",
		"| N=1 | peer | 4000 ms | 4000 ms | 4000 ms | 2.00 | 30.0 MiB | 8.0 + 20.0 MiB | 4.0× | 4.0× | 4.0× |",
		"| N=1 | ours, pooled | not measured: not merged |",
		"| N=2 | peer | no such round |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
