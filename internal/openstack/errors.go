package openstack

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"

	"github.com/gophercloud/gophercloud/v2"
)

// The classes of every error this package returns. Callers test them with
// errors.Is, and get the details (HTTP status, Neutron exception type) with
// errors.As on *Error.
var (
	// ErrNotFound: the resource does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request clashes with the resource's state: 409
	// (in use, duplicate VLAN ID, over quota) or 412 (revision mismatch).
	// Whether to retry is the caller's decision.
	ErrConflict = errors.New("conflict")
	// ErrTransient: worth retrying as is: 5xx, 408, 429, timeouts,
	// connection failures, truncated or malformed answers.
	ErrTransient = errors.New("transient")
	// ErrTerminal: retrying will not help: 400, 401, 403, other 4xx,
	// unexpected answers, cancelled requests.
	ErrTerminal = errors.New("terminal")
	// ErrMalformedResponse marks (besides ErrTransient) an answer that was
	// not the JSON expected.
	ErrMalformedResponse = errors.New("malformed response")
)

// Error is an OpenStack call that failed.
type Error struct {
	// Op names the call, e.g. "create port".
	Op string
	// Status is the HTTP status, 0 when there was no answer.
	Status int
	// Type is Neutron's exception type (e.g. "PortNotFound",
	// "DuplicateSubPort") or Nova's fault name (e.g. "itemNotFound").
	Type string
	// Message is the cloud's message, or a description of the failure.
	Message string
	class   error
	err     error
}

func (e *Error) Error() string {
	s := e.Op + ": "
	if e.Status != 0 {
		s += fmt.Sprintf("HTTP %d", e.Status)
		if e.Type != "" {
			s += " " + e.Type
		}
		s += ": "
	}
	return s + e.Message
}

// Is makes errors.Is(err, ErrNotFound) and friends work.
func (e *Error) Is(target error) bool { return target == e.class }

// Unwrap returns the underlying error (e.g. context.DeadlineExceeded).
func (e *Error) Unwrap() error { return e.err }

// Class returns ErrNotFound, ErrConflict, ErrTransient or ErrTerminal.
func (e *Error) Class() error { return e.class }

// IsRetryable reports whether err is transient (and, when conflictToo, also
// a conflict).
func IsRetryable(err error, conflictToo bool) bool {
	return errors.Is(err, ErrTransient) || (conflictToo && errors.Is(err, ErrConflict))
}

// Unanswered says whether err is a request the service may have carried
// out though its caller never heard: no answer at all (a timeout, a
// dropped connection), an answer that could not be read, or a gateway's
// 504 (the service behind it did not answer in time). A create that
// failed so may still make its resource, later.
func Unanswered(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Status == 504 || e.Status == 0 && errors.Is(err, ErrTransient)
}

// classForStatus maps an HTTP status to an error class.
func classForStatus(status int) error {
	switch {
	case status == 404:
		return ErrNotFound
	case status == 409 || status == 412:
		return ErrConflict
	case status == 408 || status == 429:
		return ErrTransient
	case status == 501 || status == 505:
		return ErrTerminal
	case status >= 500 && status < 600:
		return ErrTransient
	default:
		return ErrTerminal
	}
}

// classify turns an error from gophercloud or the network into *Error.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var own *Error
	if errors.As(err, &own) {
		return err
	}
	e := &Error{Op: op, err: err}
	var code gophercloud.ErrUnexpectedResponseCode
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var netErr net.Error
	var urlErr *url.Error
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &code):
		e.Status, e.class = code.Actual, classForStatus(code.Actual)
		e.Type, e.Message = parseErrorBody(code.Body)
		if e.Message == "" {
			e.Message = fmt.Sprintf("%s %s answered %d", code.Method, code.URL, code.Actual)
		}
	case errors.Is(err, context.DeadlineExceeded):
		e.class, e.Message = ErrTransient, "timed out: "+err.Error()
	case errors.Is(err, context.Canceled):
		e.class, e.Message = ErrTerminal, "cancelled: "+err.Error()
	case errors.As(err, &syntax), errors.As(err, &typeErr), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, ErrMalformedResponse):
		e.class, e.Message = ErrTransient, "malformed response: "+err.Error()
		e.err = errors.Join(ErrMalformedResponse, err)
	case errors.As(err, &certErr):
		// Retrying will not make the certificate trusted.
		e.class = ErrTerminal
		e.Message = "server certificate not trusted (clouds.yaml cacert names the CA to trust): " + err.Error()
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.As(err, &netErr), errors.As(err, &urlErr):
		e.class, e.Message = ErrTransient, "no answer: "+err.Error()
	default:
		e.class, e.Message = ErrTerminal, err.Error()
	}
	return e
}

// malformed is the error for an answer that decoded but lacks what was
// expected (e.g. {} instead of {"port": {...}}).
func malformed(op, what string) error {
	return &Error{Op: op, class: ErrTransient, Message: "malformed response: " + what, err: ErrMalformedResponse}
}

// parseErrorBody reads Neutron's {"NeutronError": {"type", "message"}},
// Nova's {"itemNotFound": {"message"}} and Keystone's {"error": {...}}.
func parseErrorBody(body []byte) (typ, msg string) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		if len(body) > 200 {
			body = body[:200]
		}
		return "", string(body)
	}
	if raw, ok := m["NeutronError"]; ok {
		var ne struct{ Type, Message string }
		if json.Unmarshal(raw, &ne) == nil {
			return ne.Type, ne.Message
		}
	}
	for k, raw := range m {
		var f struct {
			Message string `json:"message"`
			Title   string `json:"title"`
		}
		if json.Unmarshal(raw, &f) == nil && f.Message != "" {
			if k == "error" {
				k = f.Title
			}
			return k, f.Message
		}
	}
	return "", ""
}
