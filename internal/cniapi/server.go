package cniapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/go-logr/logr"
)

// Handler does the work of each CNI command. kuryr-daemon implements it.
// The request is validated (NetConf filled in) before a method is called.
// A returned *types.Error (wrapped or not) reaches the runtime with its code
// unchanged; any other error becomes code 999.
type Handler interface {
	// Add plugs the interface and returns the result (any version; the
	// shim converts it to the configuration's cniVersion).
	Add(ctx context.Context, req *Request) (types.Result, error)
	// Check verifies the interface still matches req.NetConf.PrevResult.
	Check(ctx context.Context, req *Request) error
	// Del unplugs; finding nothing to do is a success.
	Del(ctx context.Context, req *Request) error
	// Status says whether an ADD would succeed now (code 50 if not).
	Status(ctx context.Context, req *Request) error
	// GC releases what is not in req.NetConf.ValidAttachments.
	GC(ctx context.Context, req *Request) error
}

// Paths the server serves.
const (
	PathCNI     = "/cni"
	PathHealthz = "/healthz"
)

// Server serves the shim protocol over a unix socket.
type Server struct {
	handler Handler
	ready   func() error
	log     logr.Logger
	limits  Limits
	slots   chan struct{} // one token per CNI request being served
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithReadiness makes /healthz answer 503 with the error's text while ready
// returns an error (e.g. informers not synced yet).
func WithReadiness(ready func() error) ServerOption {
	return func(s *Server) { s.ready = ready }
}

// WithLogger sets the logger requests are logged to.
func WithLogger(l logr.Logger) ServerOption {
	return func(s *Server) { s.log = l }
}

// WithLimits sets the server's timeouts and concurrency cap (default
// DefaultLimits).
func WithLimits(l Limits) ServerOption {
	return func(s *Server) { s.limits = l }
}

// NewServer returns a server for h.
func NewServer(h Handler, opts ...ServerOption) *Server {
	s := &Server{handler: h, log: logr.Discard(), limits: DefaultLimits()}
	for _, o := range opts {
		o(s)
	}
	s.slots = make(chan struct{}, max(s.limits.MaxRequests, 1))
	return s
}

// Listen creates the socket at path with mode 0600, creating its directory
// (mode 0700) if needed and replacing a stale socket left by a previous run.
// It refuses to replace anything that is not a socket.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create socket directory for %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen on %s: exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("set mode 0600 on %s: %w", path, err)
	}
	return ln, nil
}

// Serve answers requests on ln until ctx ends, then shuts down gracefully
// (in-flight requests get up to 5 s). It returns nil on a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Mux(),
		ReadHeaderTimeout: s.limits.ReadTimeout,
		ReadTimeout:       s.limits.ReadTimeout,
		WriteTimeout:      s.limits.WriteTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Mux returns the HTTP handler: POST /cni and GET /healthz.
func (s *Server) Mux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathCNI, s.serveCNI)
	mux.HandleFunc("GET "+PathHealthz, s.serveHealthz)
	return mux
}

func (s *Server) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	if s.ready != nil {
		if err := s.ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) serveCNI(w http.ResponseWriter, r *http.Request) {
	release, busy := s.acquire(r.Context())
	if busy != nil {
		s.log.Info("CNI request refused", "code", busy.Code, "error", busy.Msg)
		writeResponse(w, http.StatusServiceUnavailable, &Response{Error: busy})
		return
	}
	defer release()
	req, perr := ParseRequest(r.Body)
	if perr != nil {
		s.log.Info("Bad CNI request", "code", perr.Code, "error", perr.Msg)
		writeResponse(w, http.StatusBadRequest, &Response{Error: perr})
		return
	}
	log := s.log.WithValues("command", req.Command, "containerID", req.ContainerID, "ifName", req.IfName,
		"pod", req.Args.PodNamespace+"/"+req.Args.PodName)
	// The handler's context ends before the write timeout cuts the
	// connection, so that the shim gets an answer rather than EOF.
	ctx, cancel := context.WithTimeout(logr.NewContext(r.Context(), log), s.limits.handlerTimeout())
	defer cancel()
	start := time.Now()
	resp, err := s.dispatch(ctx, req)
	if err != nil {
		cerr := AsCNIError(err)
		log.Info("CNI request failed", "code", cerr.Code, "error", cerr.Error(), "duration", time.Since(start))
		writeResponse(w, http.StatusInternalServerError, &Response{Error: cerr})
		return
	}
	log.V(1).Info("CNI request done", "duration", time.Since(start))
	writeResponse(w, http.StatusOK, resp)
}

func (s *Server) dispatch(ctx context.Context, req *Request) (*Response, error) {
	switch req.Command {
	case CmdAdd:
		res, err := s.handler.Add(ctx, req)
		if err != nil {
			return nil, err
		}
		if res == nil {
			return nil, fmt.Errorf("daemon returned no result for ADD of container %s", req.ContainerID)
		}
		if c, ok := res.(*current.Result); ok && c.CNIVersion == "" {
			c.CNIVersion = current.ImplementedSpecVersion
		}
		cur, err := current.NewResultFromResult(res)
		if err != nil {
			return nil, fmt.Errorf("convert the result of container %s: %w", req.ContainerID, err)
		}
		b, err := json.Marshal(cur)
		if err != nil {
			return nil, fmt.Errorf("encode the result of container %s: %w", req.ContainerID, err)
		}
		return &Response{Result: b, CNIVersion: cur.CNIVersion}, nil
	case CmdCheck:
		return &Response{}, s.handler.Check(ctx, req)
	case CmdDel:
		return &Response{}, s.handler.Del(ctx, req)
	case CmdStatus:
		return &Response{}, s.handler.Status(ctx, req)
	case CmdGC:
		return &Response{}, s.handler.GC(ctx, req)
	}
	return nil, badField("command", "%q", req.Command) // unreachable: validated
}

func writeResponse(w http.ResponseWriter, status int, resp *Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":999,"msg":"encode response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
