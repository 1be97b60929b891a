package openstack

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
)

// TestRequestAnswers: request takes the object under its key, exactly or
// ignoring case as encoding/json does, or the whole answer; an answer
// without it, or without its ID, is malformed; a failed call is
// classified.
func TestRequestAnswers(t *testing.T) {
	t.Parallel()
	c := &Client{timeout: DefaultRequestTimeout}
	body := func(b map[string]any) sender {
		return func(_ context.Context, into any) error {
			raw, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			return json.Unmarshal(raw, into)
		}
	}
	for _, tc := range []struct {
		name   string
		key    string
		body   map[string]any
		wantID string
	}{
		{"under its key", "port", map[string]any{"port": map[string]any{"id": "a"}, "other": 1}, "a"},
		{"key in another case", "port", map[string]any{"Port": map[string]any{"id": "b"}}, "b"},
		{"exact key first", "port", map[string]any{"PORT": map[string]any{"id": "x"}, "port": map[string]any{"id": "c"}}, "c"},
		{"whole answer", "", map[string]any{"id": "d"}, "d"},
		{"missing", "port", map[string]any{"ports": []any{}}, ""},
		{"null", "port", map[string]any{"port": nil}, ""},
		{"without ID", "port", map[string]any{"port": map[string]any{"name": "n"}}, ""},
		{"whole answer without ID", "", map[string]any{"name": "n"}, ""},
	} {
		p, err := request(context.Background(), c, "get port p", tc.key, "port", body(tc.body), hasID[Port])
		if tc.wantID != "" {
			if err != nil || p.ID != tc.wantID {
				t.Errorf("%s: %+v, %v; want port %s", tc.name, p, err, tc.wantID)
			}
			continue
		}
		if !errors.Is(err, ErrTransient) || !errors.Is(err, ErrMalformedResponse) ||
			!strings.Contains(err.Error(), "get port p: malformed response: no port in the answer") {
			t.Errorf("%s: %v; want a malformed response", tc.name, err)
		}
	}
	_, err := request(context.Background(), c, "get port p", "port", "port", func(context.Context, any) error {
		return gophercloud.ErrUnexpectedResponseCode{Actual: 404, Body: []byte(`{"NeutronError": {"type": "PortNotFound", "message": "gone"}}`)}
	}, hasID[Port])
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Type != "PortNotFound" || e.Op != "get port p" {
		t.Errorf("a 404: %v", err)
	}
	subs, err := request(context.Background(), c, "list subports", "sub_ports", "sub_ports",
		body(map[string]any{"sub_ports": []any{}}), present[[]Subport])
	if err != nil || subs == nil || len(subs) != 0 {
		t.Errorf("an empty list: %#v, %v", subs, err)
	}
}
