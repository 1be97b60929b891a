package cniapi

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// CNI error codes this project uses (CNI spec 1.1, "Error"). They are the
// types.Err* constants under names that say when each is used.
const (
	// CodeUnknownContainer: the container is unknown or does not exist.
	CodeUnknownContainer = types.ErrUnknownContainer // 3
	// CodeInvalidEnv: a required CNI_* variable is missing or malformed.
	CodeInvalidEnv = types.ErrInvalidEnvironmentVariables // 4
	// CodeBadConfig: the network configuration or the request is invalid.
	CodeBadConfig = types.ErrInvalidNetworkConfig // 7
	// CodeTryAgainLater: the daemon or the pod's interfaces are not ready.
	CodeTryAgainLater = types.ErrTryAgainLater // 11
	// CodePluginNotAvailable: STATUS when the daemon cannot serve ADDs.
	CodePluginNotAvailable = types.ErrPluginNotAvailable // 50
	// CodeInternal: anything else.
	CodeInternal = types.ErrInternal // 999
)

// badField returns a code-7 error whose message names the field at fault.
func badField(field, format string, args ...any) *types.Error {
	return types.NewError(CodeBadConfig, fmt.Sprintf("invalid %s: %s", field, fmt.Sprintf(format, args...)), "")
}

// badArgs returns a code-4 error (invalid environment variables) naming
// the CNI_ARGS key at fault.
func badArgs(field, format string, args ...any) *types.Error {
	return types.NewError(CodeInvalidEnv, fmt.Sprintf("invalid %s: %s", field, fmt.Sprintf(format, args...)), "")
}

// AsCNIError returns err as a *types.Error: itself when it is one (wrapped
// or not), else code 999 with err's text. It returns nil for a nil err.
func AsCNIError(err error) *types.Error {
	if err == nil {
		return nil
	}
	var e *types.Error
	if errors.As(err, &e) {
		return e
	}
	return types.NewError(CodeInternal, err.Error(), "")
}

// UnreachableError says the daemon's socket could not be reached at all:
// nothing listens there (no file, or connection refused). It is what lets the
// shim tell "the daemon is down" from "the daemon answered with an error".
type UnreachableError struct {
	Path string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("kuryr-daemon not reachable at %s: is it running? (%v)", e.Path, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// NotReadyError says the daemon answered /healthz but is not ready yet.
type NotReadyError struct {
	Path   string
	Reason string
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("kuryr-daemon at %s is not ready: %s", e.Path, e.Reason)
}
