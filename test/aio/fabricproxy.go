package aio

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// fabricProxy makes a server of the root namespace's loopback (the API
// server) reachable from the node VMs: it listens on an address of the
// fabric bridge, inside the fabric namespace, and forwards each connection
// to the loopback address. There is no kube-proxy here; the kubelets and
// the hostNetwork pods of real nodes reach the API server through it.
type fabricProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// startFabricProxy listens on listen (host:port of an address the fabric
// namespace at nsPath holds) and forwards to target.
func startFabricProxy(nsPath, listen, target string) (*fabricProxy, error) {
	var ln net.Listener
	// A socket belongs to the namespace its creating thread is in.
	err := inNS(nsPath, func() error {
		var err error
		ln, err = net.Listen("tcp", listen)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", listen, nsPath, err)
	}
	p := &fabricProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *fabricProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *fabricProxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.conns == nil {
		return false // closed
	}
	if on {
		p.conns[c] = true
	} else if p.conns != nil {
		delete(p.conns, c)
	}
	return true
}

func (p *fabricProxy) forward(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(c, true) || !p.track(up, true) {
		return
	}
	defer p.track(c, false)
	defer p.track(up, false)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}

// Close stops listening, cuts every connection and waits for the
// forwarders.
func (p *fabricProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
