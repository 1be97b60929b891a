package openstack

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// okStatus is the success status of a call: 201 for a Neutron create, 200
// otherwise (Nova's attach is a POST answered 200).
func okStatus(r *http.Request) int {
	if r.Method == http.MethodPost && !strings.Contains(r.URL.Path, "os-interface") {
		return http.StatusCreated
	}
	return http.StatusOK
}

// answer is a handler that answers every request with status and body.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// TestBadAnswers checks that a cloud answering nonsense gives classified
// errors, never a panic.
func TestBadAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		handler http.HandlerFunc
		class   error
		status  int
	}{
		{"garbage", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(okStatus(r))
			_, _ = w.Write([]byte("<html>proxy error</html>"))
		}, ErrTransient, 0},
		{"truncated JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(okStatus(r))
			_, _ = w.Write([]byte(`{"port": {"id": "abc", "fixed_ips": [`))
		}, ErrTransient, 0},
		{"wrong JSON type", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(okStatus(r))
			_, _ = w.Write([]byte(`{"port": {"id": 42}}`))
		}, ErrTransient, 0},
		{"empty object", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(okStatus(r))
			_, _ = w.Write([]byte(`{}`))
		}, ErrTransient, 0},
		{"empty body", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(okStatus(r)) }, ErrTransient, 0},
		{"200 where 201 is due", func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && !strings.Contains(r.URL.Path, "os-interface") {
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte(`{"port": {"id": "abc"}, "interfaceAttachment": {"port_id": "p"}}`))
				return
			}
			w.WriteHeader(http.StatusTeapot)
		}, ErrTerminal, 0},
		{"unexpected status 418", answer(http.StatusTeapot, ""), ErrTerminal, 418},
		{"redirect without location", answer(http.StatusFound, ""), ErrTerminal, 302},
		{"502 with HTML", answer(http.StatusBadGateway, "<html>bad gateway</html>"), ErrTransient, 502},
		{"429", answer(http.StatusTooManyRequests, ""), ErrTransient, 429},
		{"403", answer(http.StatusForbidden,
			`{"NeutronError": {"type": "PolicyNotAuthorized", "message": "no", "detail": ""}}`), ErrTerminal, 403},
		{"nothing at all", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}, ErrTransient, 0},
		{"no answer in time", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
		}, ErrTransient, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			c, err := New(context.Background(), Config{NeutronURL: srv.URL, NovaURL: srv.URL + "/v2.1",
				ProjectID: "p", RequestTimeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			calls := map[string]func() error{
				"GetPort":    func() error { _, err := c.GetPort(ctx, "abc"); return err },
				"CreatePort": func() error { _, err := c.CreatePort(ctx, PortSpec{NetworkID: "n"}); return err },
				"GetTrunk":   func() error { _, err := c.GetTrunk(ctx, "t"); return err },
				"GetServer":  func() error { _, err := c.GetServer(ctx, "s"); return err },
				"AttachInterface": func() error {
					_, err := c.AttachInterface(ctx, "s", "p")
					return err
				},
			}
			for name, call := range calls {
				err := call()
				if err == nil {
					t.Errorf("%s: no error", name)
					continue
				}
				if !errors.Is(err, tc.class) {
					t.Errorf("%s: %v: want %v", name, err, tc.class)
				}
				var e *Error
				if !errors.As(err, &e) {
					t.Errorf("%s: %T is not *Error", name, err)
				} else if tc.status != 0 && e.Status != tc.status {
					t.Errorf("%s: status %d, want %d", name, e.Status, tc.status)
				}
			}
		})
	}
}

func TestDeleteGoneSucceeds(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"NeutronError": {"type": "PortNotFound", "message": "Port x could not be found.", "detail": ""}}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(context.Background(), Config{NeutronURL: srv.URL, NovaURL: srv.URL, ProjectID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePort(context.Background(), "x"); err != nil {
		t.Errorf("DeletePort of a gone port: %v", err)
	}
	if err := c.DetachInterface(context.Background(), "s", "x"); err != nil {
		t.Errorf("DetachInterface of a gone attachment: %v", err)
	}
	_, err = c.GetPort(context.Background(), "x")
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Type != "PortNotFound" || e.Message != "Port x could not be found." {
		t.Errorf("GetPort = %v (%+v)", err, e)
	}
}

func TestCancelledIsTerminal(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	c, err := New(context.Background(), Config{NeutronURL: srv.URL, ProjectID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = c.GetPort(ctx, "x")
	if !errors.Is(err, ErrTerminal) || !errors.Is(err, context.Canceled) {
		t.Errorf("GetPort with a cancelled context = %v", err)
	}
	_, err = c.GetServer(context.Background(), "s")
	if !errors.Is(err, ErrTerminal) {
		t.Errorf("GetServer without a Nova endpoint = %v", err)
	}
}

func TestClassForStatus(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]error{
		400: ErrTerminal, 401: ErrTerminal, 403: ErrTerminal, 404: ErrNotFound, 408: ErrTransient,
		409: ErrConflict, 412: ErrConflict, 413: ErrTerminal, 429: ErrTransient, 500: ErrTransient,
		501: ErrTerminal, 502: ErrTransient, 503: ErrTransient, 504: ErrTransient, 302: ErrTerminal,
	} {
		if got := classForStatus(status); got != want {
			t.Errorf("classForStatus(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestParseErrorBody(t *testing.T) {
	t.Parallel()
	for body, want := range map[string][2]string{
		`{"NeutronError": {"type": "DuplicateSubPort", "message": "in use", "detail": ""}}`: {"DuplicateSubPort", "in use"},
		`{"itemNotFound": {"code": 404, "message": "Instance x could not be found."}}`:      {"itemNotFound", "Instance x could not be found."},
		`{"error": {"code": 401, "message": "auth needed", "title": "Unauthorized"}}`:       {"Unauthorized", "auth needed"},
		`not json`: {"", "not json"},
	} {
		typ, msg := parseErrorBody([]byte(body))
		if typ != want[0] || msg != want[1] {
			t.Errorf("parseErrorBody(%s) = %q, %q; want %q", body, typ, msg, want)
		}
	}
}
