package main

import "testing"

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
