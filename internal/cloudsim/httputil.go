package cloudsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds request bodies.
const maxBody = 4 << 20

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// apiError is an error with the HTTP status and Neutron exception type it
// is answered with.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errf(status int, typ, format string, args ...any) *apiError {
	return &apiError{status: status, typ: typ, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, "HTTPBadRequest", format, args...)
}

// writeNeutronError answers as Neutron does:
// {"NeutronError": {"type": ..., "message": ..., "detail": ""}}.
func writeNeutronError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]any{"NeutronError": map[string]string{
		"type": e.typ, "message": e.msg, "detail": "",
	}})
}

// novaFaultNames are the keys of Nova's error bodies per status.
var novaFaultNames = map[int]string{
	400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
	409: "conflictingRequest", 413: "overLimit", 429: "overLimit", 501: "notImplemented",
	503: "serviceUnavailable",
}

// writeNovaError answers as Nova does: {"itemNotFound": {"code": 404, "message": ...}}.
func writeNovaError(w http.ResponseWriter, status int, msg string) {
	name, ok := novaFaultNames[status]
	if !ok {
		name = "computeFault"
	}
	writeJSON(w, status, map[string]any{name: map[string]any{"code": status, "message": msg}})
}

// writeKeystoneError answers as Keystone does: {"error": {"code", "message", "title"}}.
func writeKeystoneError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": status, "message": msg, "title": http.StatusText(status),
	}})
}

// neutronTypes are Neutron's exception type names for plain HTTP errors.
var neutronTypes = map[int]string{
	400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden", 404: "HTTPNotFound",
	409: "HTTPConflict", 412: "HTTPPreconditionFailed", 429: "HTTPTooManyRequests",
	500: "HTTPInternalServerError", 503: "HTTPServiceUnavailable",
}

// writeServiceError answers an error in the dialect of op's service.
func writeServiceError(w http.ResponseWriter, op string, status int, msg string) {
	switch {
	case strings.HasPrefix(op, "neutron."):
		typ, ok := neutronTypes[status]
		if !ok {
			typ = "HTTPError"
		}
		writeNeutronError(w, &apiError{status: status, typ: typ, msg: msg})
	case strings.HasPrefix(op, "nova."):
		writeNovaError(w, status, msg)
	default:
		writeKeystoneError(w, status, msg)
	}
}

// readBody decodes the request's JSON body into a map of raw members.
func readBody(r *http.Request) (map[string]json.RawMessage, *apiError) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, badRequest("failed to read request body: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, badRequest("Malformed request body")
	}
	return m, nil
}

// member decodes body[key] into v; a missing key is an error when required.
func member(body map[string]json.RawMessage, key string, v any, required bool) *apiError {
	raw, ok := body[key]
	if !ok {
		if required {
			return badRequest("Failed to parse request. Required attribute '%s' not specified", key)
		}
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return badRequest("Invalid input for %s. Reason: %v.", key, err)
	}
	return nil
}

// field is one member of a request body: its key, where it is decoded to
// and whether it must be there.
type field struct {
	key      string
	into     any
	required bool
}

// members decodes fields from body in their order; the first missing or
// invalid one is the error.
func members(body map[string]json.RawMessage, fields []field) *apiError {
	for _, f := range fields {
		if e := member(body, f.key, f.into, f.required); e != nil {
			return e
		}
	}
	return nil
}

// resourceBody returns the object under key (e.g. "port") of a request body.
func resourceBody(r *http.Request, key string) (map[string]json.RawMessage, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var obj map[string]json.RawMessage
	if e := member(body, key, &obj, true); e != nil {
		return nil, badRequest("Resource body required")
	}
	if obj == nil {
		return nil, badRequest("Resource body required")
	}
	return obj, nil
}

// neutronHandler adapts a handler that returns an error to one that
// answers Neutron errors.
func neutronHandler(f func(w http.ResponseWriter, r *http.Request) *apiError) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e := f(w, r); e != nil {
			writeNeutronError(w, e)
		}
	}
}

// novaHandler adapts a handler that returns an error to one that answers
// Nova errors.
func novaHandler(f func(w http.ResponseWriter, r *http.Request) *apiError) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e := f(w, r); e != nil {
			writeNovaError(w, e.status, e.msg)
		}
	}
}

// timeString formats t as Neutron does (RFC 3339, seconds, Z).
func timeString(t interface{ Format(string) string }) string {
	return t.Format("2006-01-02T15:04:05Z")
}
