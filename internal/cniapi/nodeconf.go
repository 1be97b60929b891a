package cniapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/types"
)

// NodeConfigName is the file, next to the kuryr-cni binary (the runtime's
// CNI binary directory), that says where this node's kuryr-daemon listens.
// `kuryrctl install-cni` (the DaemonSet's init container) writes it.
//
// The daemon's socket is never taken from a network configuration: under
// Multus that is a NetworkAttachmentDefinition's spec.config, which any
// user allowed to create one writes, and a socket of their choosing would
// receive every CNI call of the pods that use it (and give the answers).
// The binary's directory is as trusted as the binary itself: whoever can
// write there can replace the shim.
const NodeConfigName = "kuryr-cni.node.json"

// NodeConfig is the content of the node-local file NodeConfigName.
type NodeConfig struct {
	// DaemonSocket is kuryr-daemon's unix socket: absolute, clean, at most
	// 107 bytes.
	DaemonSocket string `json:"daemonSocket"`
}

// maxNodeConfigLen bounds the node-local file.
const maxNodeConfigLen = 4096

// ParseNodeConfig decodes the node-local file: one JSON object with
// daemonSocket, no other field, nothing after it.
func ParseNodeConfig(data []byte) (NodeConfig, error) {
	if len(data) > maxNodeConfigLen {
		return NodeConfig{}, fmt.Errorf("longer than %d bytes", maxNodeConfigLen)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c NodeConfig
	if err := dec.Decode(&c); err != nil {
		return NodeConfig{}, fmt.Errorf("not a kuryr-cni node configuration: %w", err)
	}
	if dec.More() {
		return NodeConfig{}, errors.New("trailing data after the JSON object")
	}
	if err := checkSocket("daemonSocket", c.DaemonSocket); err != nil {
		return NodeConfig{}, errors.New(err.Msg)
	}
	return c, nil
}

// MarshalNodeConfig encodes a node-local file, checked as ParseNodeConfig
// checks it.
func MarshalNodeConfig(c NodeConfig) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if _, err := ParseNodeConfig(b); err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// LoadNodeConfig reads NodeConfigName in dir (the shim's own directory).
// Without the file the socket is DefaultSocketPath; a file that is there
// and does not parse is an error naming it (a code 7 CNI error).
func LoadNodeConfig(dir string) (NodeConfig, *types.Error) {
	path := filepath.Join(dir, NodeConfigName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NodeConfig{DaemonSocket: DefaultSocketPath}, nil
	}
	if err != nil {
		return NodeConfig{}, types.NewError(CodeBadConfig, fmt.Sprintf("kuryr-cni node configuration %s: %v", path, err), "")
	}
	c, err := ParseNodeConfig(data)
	if err != nil {
		return NodeConfig{}, types.NewError(CodeBadConfig, fmt.Sprintf("kuryr-cni node configuration %s: %v", path, err), "")
	}
	return c, nil
}

// CheckDaemonSocket refuses a network configuration whose daemonSocket is
// set and names another socket than the node's: the field is accepted
// only as the same value (configurations written before the socket moved
// to the node-local file keep working), never as a choice.
func (c *NetConf) CheckDaemonSocket(node NodeConfig, from string) *types.Error {
	if c.DaemonSocket == "" || c.DaemonSocket == node.DaemonSocket {
		return nil
	}
	return badField("daemonSocket", "%q is not this node's kuryr-daemon socket %q (from %s): the socket is never taken from a network configuration; remove the field",
		c.DaemonSocket, node.DaemonSocket, from)
}
