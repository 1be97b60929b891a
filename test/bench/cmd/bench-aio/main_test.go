package main

import (
	"strings"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/test/aio"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in       string
		n, nodes int
		bad      bool
	}{
		{in: "1", n: 1, nodes: 1}, {in: "10", n: 10, nodes: 2}, {in: "100", n: 100, nodes: 10},
		{in: "1000", n: 1000, nodes: 50}, {in: "20:4", n: 20, nodes: 4},
		{in: "0", bad: true}, {in: "x", bad: true}, {in: "5:0", bad: true},
	} {
		n, nodes, err := parseSize(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("parseSize(%q) accepted", c.in)
			}
			continue
		}
		if err != nil || n != c.n || nodes != c.nodes {
			t.Errorf("parseSize(%q) = %d, %d, %v; want %d, %d", c.in, n, nodes, err, c.n, c.nodes)
		}
	}
}

// TestParsePool: --dpdk-pool is empty (no pools), auto (sized per run for
// the pods per node, within the node's slots) or MIN,MAX[,BATCH]; anything
// else is refused.
func TestParsePool(t *testing.T) {
	off, err := parsePool("")
	if err != nil || off(100, 10) != (aio.PoolSize{}) {
		t.Fatalf("empty: %v, %+v", err, off(100, 10))
	}
	auto, err := parsePool("auto")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ n, nodes, want int }{{1, 1, 3}, {10, 2, 8}, {100, 10, 14}, {1000, 50, 26}, {2000, 10, aio.NodePCISlots}} {
		if got := auto(c.n, c.nodes); got != (aio.PoolSize{Min: c.want, Max: c.want, Batch: c.want}) {
			t.Errorf("auto for N=%d over %d nodes: %+v, want %d each", c.n, c.nodes, got, c.want)
		}
	}
	for in, want := range map[string]aio.PoolSize{"4,8": {Min: 4, Max: 8, Batch: 8}, " 2 , 6 , 3 ": {Min: 2, Max: 6, Batch: 3}, "0,1": {Min: 0, Max: 1, Batch: 1}} {
		f, err := parsePool(in)
		if err != nil || f(1, 1) != want {
			t.Errorf("parsePool(%q): %v, want %+v", in, err, want)
		}
	}
	for _, in := range []string{"8", "8,4", "0,0", "1,2,3", "1,2,0", "a,b", "1,100", "1,2,3,4", "-1,2"} {
		if _, err := parsePool(in); err == nil || !strings.Contains(err.Error(), "--dpdk-pool") {
			t.Errorf("parsePool(%q) accepted or unnamed: %v", in, err)
		}
	}
}
