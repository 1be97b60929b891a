// Package cniapi is the protocol between the kuryr-cni shim, which the
// container runtime or Multus executes, and kuryr-daemon, which does the work.
//
// The shim turns the CNI environment and stdin into a [Request], sends it as
// JSON with POST /cni over a unix socket (mode 0600, default
// [DefaultSocketPath]) and prints the [Response]'s result. GET /healthz tells
// whether the daemon is up and ready. CNI error codes travel across the hop
// unchanged in [Response].Error.
//
// The package also holds the parsers for what arrives from the runtime:
// CNI_ARGS ([ParseCNIArgs]) and the network configuration of type kuryr-cni
// ([ParseNetConf]). Every parse error is a *types.Error with code 7 whose
// message names the field at fault.
package cniapi
