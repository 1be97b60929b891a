// Package freeport picks TCP ports on 127.0.0.1 for the servers the tests
// and benchmarks start.
package freeport

import (
	"fmt"
	"net"
)

// Pick returns n different TCP ports free on 127.0.0.1 at the time of the
// call. It holds each port's listener until all are picked: a port closed
// at once may be handed out again by the next pick (the kernel gave a
// daemon's health and pprof addresses the same port).
func Pick(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer func() { _ = l.Close() }()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
