package openstack

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
)

// sender makes one call and decodes its JSON answer into the value into
// points at (a call, or a fake in tests).
type sender func(ctx context.Context, into any) error

// call is the sender of one request to sc: method on the resource at path
// (each part escaped, so an ID cannot leave its place), with body as its
// JSON body (none when nil), headers added, and the answer's status one of
// ok (gophercloud's default for the method when none). The answer is
// decoded straight into the caller's type: no generic maps of it are made
// (gophercloud's request functions decode every answer into map[string]any
// and Extract encodes and decodes that again, which at a thousand pods was
// 18 % of the controller's peak heap).
func call(sc *gophercloud.ServiceClient, method string, path []string, body any,
	headers map[string]string, ok ...int) sender {
	return func(ctx context.Context, into any) error {
		opts := &gophercloud.RequestOpts{JSONBody: body, JSONResponse: into, MoreHeaders: headers, OkCodes: ok}
		parts := make([]string, len(path))
		for i, p := range path {
			parts[i] = url.PathEscape(p)
		}
		_, err := sc.Request(ctx, method, sc.ServiceURL(parts...), opts)
		return err
	}
}

// request is the sequence of every call answered with one object or list:
// send runs under the client's per-request timeout, the value under key of
// the answer (the whole answer when key is "") is decoded into a T, and
// the errors are classified: a failed call or an answer that does not
// decode through classify, an answer without the value, or whose value
// complete rejects, as a malformed response naming what (e.g. "port").
func request[T any](ctx context.Context, c *Client, op, key, what string,
	send sender, complete func(*T) bool) (T, error) {
	var zero T
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	v, err := extract[T](rctx, send, key)
	if err != nil {
		return zero, classify(op, err)
	}
	if v == nil || !complete(v) {
		return zero, malformed(op, "no "+what+" in the answer")
	}
	return *v, nil
}

// extract decodes the value under key of send's JSON answer (the whole
// answer when key is ""); nil when it is missing or null. The key matches
// as encoding/json matches a struct field's name: exactly, else ignoring
// case. Only the members' raw bytes are kept on the way (one copy of the
// answer), not a decoded tree of it.
func extract[T any](ctx context.Context, send sender, key string) (*T, error) {
	var v *T
	if key == "" {
		err := send(ctx, &v)
		return v, err
	}
	var members map[string]json.RawMessage
	if err := send(ctx, &members); err != nil {
		return nil, err
	}
	raw, ok := members[key]
	if !ok {
		for k, m := range members {
			if strings.EqualFold(k, key) {
				raw, ok = m, true
				break
			}
		}
	}
	if !ok {
		return nil, nil
	}
	err := json.Unmarshal(raw, &v)
	return v, err
}

// identified are the answers that are complete when they carry their ID.
type identified interface{ id() string }

func (p Port) id() string      { return p.ID }
func (n Network) id() string   { return n.ID }
func (s Subnet) id() string    { return s.ID }
func (t Trunk) id() string     { return t.ID }
func (s Server) id() string    { return s.ID }
func (i Interface) id() string { return i.PortID }

// hasID tells an answer that carries its ID (a port ID for an attachment).
func hasID[T identified](v *T) bool { return (*v).id() != "" }

// present tells an answer that was there at all (e.g. an empty list).
func present[T any](*T) bool { return true }

// removed treats ErrNotFound as success, for a delete or detach whose
// object may already be gone.
func removed(err error) error {
	if isNotFound(err) {
		return nil
	}
	return err
}
