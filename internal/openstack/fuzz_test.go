package openstack

import (
	"errors"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
)

// FuzzClassifyErrorBody: whatever status and body a cloud answers with,
// classify never panics and returns one *Error of exactly one class, with
// the status as given and that status's class. Run longer with
// go test -run '^$' -fuzz FuzzClassifyErrorBody ./internal/openstack/
func FuzzClassifyErrorBody(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{409, `{"NeutronError": {"type": "MacAddressInUse", "message": "Unable to complete operation for network n. The mac address fa:16:3e:00:00:01 is in use.", "detail": ""}}`},
		{404, `{"itemNotFound": {"code": 404, "message": "Instance x could not be found."}}`},
		{401, `{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}`},
		{500, `<html><body>Internal Server Error</body></html>`},
		{400, `{"NeutronError": "not an object"}`},
		{503, ``},
		{412, `{"NeutronError": {"type": 7}}`},
		{200, `{"a": {"message": 3}, "b": {"message": "m"}}`},
	} {
		f.Add(s.status, []byte(s.body))
	}
	classes := []error{ErrNotFound, ErrConflict, ErrTransient, ErrTerminal}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		err := classify("create port", gophercloud.ErrUnexpectedResponseCode{Method: "POST", URL: "http://neutron/v2.0/ports", Actual: status, Body: body})
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("classify returned %T, want *Error", err)
		}
		n := 0
		for _, c := range classes {
			if errors.Is(err, c) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("error %v is in %d classes, want 1", err, n)
		}
		if e.Status != status || e.Class() != classForStatus(status) {
			t.Fatalf("status %d class %v, want %d and %v", e.Status, e.Class(), status, classForStatus(status))
		}
		if e.Message == "" {
			t.Fatal("empty message")
		}
	})
}
