package cniapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// Client talks to the daemon's socket. The shim uses it.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client for the socket at path (DefaultSocketPath if
// empty).
func NewClient(path string) *Client {
	if path == "" {
		path = DefaultSocketPath
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true, // one request per shim process
	}
	return &Client{path: path, http: &http.Client{Transport: tr}}
}

// Path is the socket path the client dials.
func (c *Client) Path() string { return c.path }

// Healthz asks whether the daemon is up and ready. It returns an
// *UnreachableError when nothing listens on the socket and a *NotReadyError
// when the daemon answers that it is not ready.
func (c *Client) Healthz(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://kuryr-daemon"+PathHealthz, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return &NotReadyError{Path: c.path, Reason: strings.TrimSpace(string(body))}
	}
	return nil
}

// WaitReady polls Healthz with a short backoff (50 ms doubling to 1 s)
// until the daemon is ready, ctx ends or bound passes; then it returns the
// last Healthz error.
func (c *Client) WaitReady(ctx context.Context, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	delay := 50 * time.Millisecond
	var last error
	for {
		err := c.Healthz(ctx)
		if err == nil {
			return nil
		}
		// An attempt cut short by the bound says less than the one before
		// it (unreachable, not ready): keep that one.
		if ctx.Err() == nil || last == nil {
			last = err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return last
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}

// Do sends req and returns the daemon's response. A CNI error from the
// daemon comes back as a *types.Error with its code unchanged; a daemon that
// cannot be reached as an *UnreachableError; anything else (the daemon
// crashed mid-request, a garbled answer) as code 11 or 999.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s request for container %s: %w", req.Command, req.ContainerID, err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://kuryr-daemon"+PathCNI, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		if terr := c.transportError(err); errors.As(terr, new(*UnreachableError)) {
			return nil, terr
		}
		return nil, types.NewError(CodeTryAgainLater,
			fmt.Sprintf("kuryr-daemon at %s did not answer the %s request: %v", c.path, req.Command, err), "")
	}
	defer func() { _ = hresp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, maxRequestLen))
	if err != nil {
		return nil, types.NewError(CodeTryAgainLater,
			fmt.Sprintf("kuryr-daemon at %s: reading the %s answer: %v", c.path, req.Command, err), "")
	}
	return c.decodeResponse(req.Command, hresp.StatusCode, raw)
}

// decodeResponse turns the daemon's answer to command (HTTP status and
// body) into the response, or into the CNI error it carries.
func (c *Client) decodeResponse(command string, status int, raw []byte) (*Response, error) {
	var resp Response
	if err := json.Unmarshal(raw, &resp); err != nil {
		return nil, types.NewError(CodeInternal,
			fmt.Sprintf("kuryr-daemon at %s answered %s with HTTP %d and no valid response", c.path, command, status),
			snippet(raw))
	}
	if e := resp.Error; e != nil {
		if e.Code == 0 {
			// Code 0 is no CNI error code: the runtime would read it
			// as no error at all.
			return nil, types.NewError(CodeInternal,
				fmt.Sprintf("kuryr-daemon at %s answered %s with an error without a code: %s", c.path, command, e.Msg), e.Details)
		}
		return nil, e
	}
	if status != http.StatusOK {
		return nil, types.NewError(CodeInternal,
			fmt.Sprintf("kuryr-daemon at %s answered %s with HTTP %d and no error", c.path, command, status), snippet(raw))
	}
	return &resp, nil
}

// transportError classifies a failure to reach the socket.
func (c *Client) transportError(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ENOTSOCK) || errors.Is(err, syscall.EACCES) {
		return &UnreachableError{Path: c.path, Err: err}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return &UnreachableError{Path: c.path, Err: err}
	}
	return err
}

func snippet(b []byte) string {
	const n = 256
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
