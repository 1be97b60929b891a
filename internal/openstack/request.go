package openstack

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// request is the sequence of every call answered with one object or list:
// send runs the gophercloud call under the client's per-request timeout,
// the value under key of the answer (the whole answer when key is "") is
// decoded into a T, and the errors are classified: a failed call or an
// answer that does not decode through classify, an answer without the
// value, or whose value complete rejects, as a malformed response naming
// what (e.g. "port").
func request[T any](ctx context.Context, c *Client, op, key, what string,
	send func(context.Context) gophercloud.Result, complete func(*T) bool) (T, error) {
	var zero T
	rctx, cancel := c.requestCtx(ctx)
	defer cancel()
	v, err := extract[T](send(rctx), key)
	if err != nil {
		return zero, classify(op, err)
	}
	if v == nil || !complete(v) {
		return zero, malformed(op, "no "+what+" in the answer")
	}
	return *v, nil
}

// extract decodes the value under key of r's JSON answer (the whole answer
// when key is ""); nil when it is missing or null. The key matches as
// encoding/json matches a struct field's name: exactly, else ignoring case.
func extract[T any](r gophercloud.Result, key string) (*T, error) {
	var v *T
	if key == "" {
		err := r.ExtractInto(&v)
		return v, err
	}
	var members map[string]json.RawMessage
	if err := r.ExtractInto(&members); err != nil {
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

// allPages fetches every page of p as one result, for request.
func allPages(ctx context.Context, p pagination.Pager) gophercloud.Result {
	page, err := p.AllPages(ctx)
	if err != nil {
		return gophercloud.Result{Err: err}
	}
	return gophercloud.Result{Body: page.GetBody()}
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
