package controller

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/openstack"
)

// privateError is an error whose full text is for the controller's log
// only: tenants (the pod's Events, its KuryrPod's status) see public
// instead, which names the pod's own objects only.
type privateError struct {
	public string
	err    error
}

func (e *privateError) Error() string { return e.err.Error() }
func (e *privateError) Unwrap() error { return e.err }

// private marks err's text as private; public is what tenants see.
func private(public string, err error) error { return &privateError{public: public, err: err} }

// publicText is err's text as tenants may see it: the cloud's own message
// (Neutron's and Nova's text names other resources, other tenants' ports,
// networks and servers, by ID; a connection error names the cloud's
// endpoints) is replaced by the call, its HTTP status and exception type,
// and a privateError by its public text. The full text goes to the
// controller's log (apply, Reconcile's returned errors).
func publicText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	walkErrors(err, func(e error) {
		switch e := e.(type) {
		case *privateError:
			s = strings.ReplaceAll(s, e.Error(), e.public)
		case *openstack.Error:
			s = strings.ReplaceAll(s, e.Error(), cloudSummary(e))
		}
	})
	return s
}

// cloudSummary says what a failed cloud call was without the cloud's text.
func cloudSummary(e *openstack.Error) string {
	switch {
	case e.Status != 0 && e.Type != "":
		return fmt.Sprintf("%s: the cloud answered HTTP %d %s", e.Op, e.Status, e.Type)
	case e.Status != 0:
		return fmt.Sprintf("%s: the cloud answered HTTP %d", e.Op, e.Status)
	case errors.Is(e, openstack.ErrTransient):
		return e.Op + ": no answer from the cloud"
	}
	return e.Op + ": failed (details in the controller's log)"
}

// walkErrors calls fn on err and every error it wraps, outermost first.
func walkErrors(err error, fn func(error)) {
	if err == nil {
		return
	}
	fn(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), fn)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walkErrors(e, fn)
		}
	}
}
