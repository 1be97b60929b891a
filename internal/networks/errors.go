// Package networks works out which interfaces a pod needs: it parses the
// Network Plumbing WG networks annotation (comma and JSON forms), reads what
// backs each NetworkAttachmentDefinition (a kuryr-cni spec.config, or
// kuryr-kubernetes' openstack.org/kuryr-config annotation), and plans the
// pod's interfaces with their names, drivers and subnets.
package networks

import (
	"errors"
	"fmt"
)

// SpecError is a problem with what the user wrote (pod annotation or NAD).
// Retrying does not help: it is terminal until the object changes.
type SpecError struct {
	// Object says where the problem is, e.g. `pod annotation "k8s.v1.cni.cncf.io/networks"`
	// or `NetworkAttachmentDefinition default/dataplane`.
	Object string
	// Field names the offending field, e.g. "[1].mac" or "spec.config.driver".
	Field string
	// Reason says what is wrong and what to do about it.
	Reason string
}

func (e *SpecError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Object, e.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", e.Object, e.Field, e.Reason)
}

// IsSpecError reports whether err is, or wraps, a *SpecError.
func IsSpecError(err error) bool {
	var se *SpecError
	return errors.As(err, &se)
}

// ErrNADNotFound is wrapped by errors for a NetworkAttachmentDefinition that
// does not exist (yet). It is not terminal: the NAD may be created later.
var ErrNADNotFound = errors.New("NetworkAttachmentDefinition not found")
