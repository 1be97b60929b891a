package testenv

import (
	"io"
	"net/http"
	"path"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// WatchGate sits between a component and the API server for one resource
// (its plural name, "kuryrnodes"): while held it holds back what the API
// server sends to the watches of that resource (a watch lagging behind the
// API server, as watches may), and it counts the reads of one object of it
// (GETs by name), which it can make fail. The zero value with Resource set
// is open.
type WatchGate struct {
	Resource string

	mu   sync.Mutex
	open chan struct{} // closed while the gate is open; nil: never held
	gets int
	// failGets: reads by name are answered 500 without reaching the API
	// server.
	failGets bool
}

// Wrap returns a copy of cfg whose requests about g.Resource pass through
// g.
func (g *WatchGate) Wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			dir, _ := path.Split(req.URL.Path)
			if req.Method == http.MethodGet && strings.HasSuffix(dir, "/"+g.Resource+"/") {
				g.mu.Lock()
				g.gets++
				fail := g.failGets
				g.mu.Unlock()
				if fail {
					return &http.Response{StatusCode: http.StatusInternalServerError, Request: req,
						Header: http.Header{"Content-Type": []string{"application/json"}},
						Body:   io.NopCloser(strings.NewReader(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected by the test","code":500}`)),
					}, nil
				}
			}
			resp, err := rt.RoundTrip(req)
			if err != nil || req.URL.Query().Get("watch") != "true" || !strings.HasSuffix(req.URL.Path, "/"+g.Resource) {
				return resp, err
			}
			resp.Body = &gatedBody{ReadCloser: resp.Body, g: g, done: req.Context().Done()}
			return resp, nil
		})
	})
	return cfg
}

// FailReads makes the reads by name fail (true) or reach the API server.
func (g *WatchGate) FailReads(fail bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failGets = fail
}

// Reads is how many objects of g.Resource were read by name so far.
func (g *WatchGate) Reads() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gets
}

// Hold stops the watches' data until Release; what they read meanwhile
// is handed over then.
func (g *WatchGate) Hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

// Release opens the gate (a no-op when it is open).
func (g *WatchGate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open != nil {
		close(g.open)
		g.open = nil
	}
}

func (g *WatchGate) opened() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return g.open
}

type gatedBody struct {
	io.ReadCloser
	g    *WatchGate
	done <-chan struct{}
}

// Read waits for the gate after the read: data that arrives while the
// gate is held is handed over once it opens (or the watch ends).
func (b *gatedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	select {
	case <-b.g.opened():
	case <-b.done:
	}
	return n, err
}
