package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPickIsDistinct: the ports of one Pick are all different and, after
// it returns, free to listen on (150 is the all-in-one's count for 50
// nodes; picked and closed one by one they collided).
func TestPickIsDistinct(t *testing.T) {
	t.Parallel()
	ports, err := Pick(150)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d picked twice in %v", p, ports)
		}
		seen[p] = true
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])))
	if err != nil {
		t.Fatalf("picked port not free after the call: %v", err)
	}
	_ = l.Close()
}
