package aio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// fabricProxy joins the root namespace's loopback and the fabric, where
// the node VMs are, in one of two ways:
//
//   - forwarding (startFabricProxy): it listens on an address of the
//     fabric bridge, inside the fabric namespace, and forwards each
//     connection to a server on the loopback (the API server, the simulated
//     cloud). There is no kube-proxy here; the kubelets and the hostNetwork
//     pods of real nodes reach those servers through it.
//   - HTTP CONNECT (startConnectProxy): it listens on a unix socket and opens
//     each requested connection from inside the fabric namespace: the API
//     server's "cluster" egress (--egress-selector-config-file), by which
//     it reaches the kubelets for exec, logs and port-forward.
type fabricProxy struct {
	ln     net.Listener
	target string        // forwarding: where to
	dialNS func() string // HTTP CONNECT: the namespace to dial from

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
	return serveProxy(&fabricProxy{ln: ln, target: target}), nil
}

// startConnectProxy listens on the unix socket socket and serves HTTP
// CONNECT, dialing from the namespace nsPath returns at the time of each
// request (the fabric may be made after the proxy).
func startConnectProxy(socket string, nsPath func() string) (*fabricProxy, error) {
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("listen for the API server's egress: %w", err)
	}
	return serveProxy(&fabricProxy{ln: ln, dialNS: nsPath}), nil
}

func serveProxy(p *fabricProxy) *fabricProxy {
	p.conns = map[net.Conn]bool{}
	p.wg.Add(1)
	go p.serve()
	return p
}

// Addr is the address the proxy listens on.
func (p *fabricProxy) Addr() string { return p.ln.Addr().String() }

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

// connect reads an HTTP CONNECT request from c, dials its host from the
// fabric namespace and answers 200; the client's bytes that follow are in
// the returned reader.
func (p *fabricProxy) connect(c net.Conn) (net.Conn, io.Reader, error) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	if req.Method != http.MethodConnect {
		_, _ = io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return nil, nil, fmt.Errorf("%s %s: only CONNECT", req.Method, req.Host)
	}
	var up net.Conn
	err = inNS(p.dialNS(), func() error {
		var err error
		up, err = net.DialTimeout("tcp", req.Host, 10*time.Second)
		return err
	})
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return nil, nil, err
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_ = up.Close()
		return nil, nil, err
	}
	return up, br, nil
}

func (p *fabricProxy) forward(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	var up net.Conn
	var src io.Reader = c
	var err error
	if p.dialNS != nil {
		up, src, err = p.connect(c)
	} else {
		up, err = net.Dial("tcp", p.target)
	}
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
	pipe := func(dst net.Conn, src io.Reader) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, src)
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
