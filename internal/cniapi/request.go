package cniapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
)

// CNI commands carried by a Request.
const (
	CmdAdd    = "ADD"
	CmdCheck  = "CHECK"
	CmdDel    = "DEL"
	CmdStatus = "STATUS"
	CmdGC     = "GC"
)

var commands = []string{CmdAdd, CmdCheck, CmdDel, CmdStatus, CmdGC}

// DefaultSocketPath is where kuryr-daemon listens unless configured.
const DefaultSocketPath = "/run/kuryr-dpdk/cni.sock"

// Request is one CNI call forwarded by the shim: the CNI_* environment and
// the stdin configuration, unchanged.
type Request struct {
	Command     string  `json:"command"`
	ContainerID string  `json:"containerID,omitempty"`
	Netns       string  `json:"netns,omitempty"`
	IfName      string  `json:"ifName,omitempty"`
	Args        CNIArgs `json:"args,omitzero"`
	Path        string  `json:"path,omitempty"`
	// Config is the stdin configuration bytes exactly as the runtime gave
	// them (base64 in JSON, so nothing is reformatted on the way).
	Config []byte `json:"config"`

	// NetConf is Config parsed and validated; the server fills it in
	// before calling the Handler.
	NetConf *NetConf `json:"-"`
}

// Response is the daemon's answer: a result (ADD) or a CNI error.
type Response struct {
	// Result is the ADD result, in the version of CNIVersion.
	Result     json.RawMessage `json:"result,omitempty"`
	CNIVersion string          `json:"cniVersion,omitempty"`
	Error      *types.Error    `json:"error,omitempty"`
}

// maxRequestLen bounds a request body: the config plus a little.
const maxRequestLen = maxConfigLen*4/3 + 64<<10

// ParseRequest decodes a request body and validates every field, including
// the configuration (filled into NetConf). Errors have code 7 and name the
// field.
func ParseRequest(r io.Reader) (*Request, *types.Error) {
	body, err := io.ReadAll(io.LimitReader(r, maxRequestLen+1))
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("read request: %v", err), "")
	}
	if len(body) > maxRequestLen {
		return nil, badField("request", "longer than %d bytes", maxRequestLen)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		return nil, jsonError("request", err)
	}
	if dec.More() {
		return nil, badField("request", "trailing data after the JSON object")
	}
	if e := req.Validate(); e != nil {
		return nil, e
	}
	return &req, nil
}

// Validate checks the fields the command needs (the rules of the CNI spec
// and skel) and parses Config into NetConf.
func (r *Request) Validate() *types.Error {
	if !slices.Contains(commands, r.Command) {
		return badField("command", "%q is not one of ADD, CHECK, DEL, STATUS, GC", r.Command)
	}
	perContainer := r.Command == CmdAdd || r.Command == CmdCheck || r.Command == CmdDel
	if perContainer {
		if r.ContainerID == "" {
			return badField("containerID", "missing")
		}
		if len(r.ContainerID) > 256 || !containerID.MatchString(r.ContainerID) {
			return badField("containerID", "%q has characters other than letters, digits, _ . -", r.ContainerID)
		}
		if e := checkIfName(r.IfName); e != nil {
			return e
		}
	}
	if r.Command == CmdAdd || r.Command == CmdCheck {
		if r.Netns == "" {
			return badField("netns", "missing (required for %s)", r.Command)
		}
	}
	if r.Netns != "" {
		if e := checkPath("netns", r.Netns); e != nil {
			return e
		}
	}
	if e := r.Args.Validate(); e != nil {
		return e
	}
	if len(r.Config) == 0 {
		return badField("config", "missing")
	}
	conf, e := ParseNetConfFor(r.Command, r.Config)
	if e != nil {
		return e
	}
	r.NetConf = conf
	return nil
}

// checkIfName applies the kernel's rules for interface names.
func checkIfName(n string) *types.Error {
	switch {
	case n == "":
		return badField("ifName", "missing")
	case len(n) > 15:
		return badField("ifName", "%q is longer than 15 bytes", n)
	case n == "." || n == "..":
		return badField("ifName", "%q is not a name", n)
	}
	for _, c := range n {
		if c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return badField("ifName", "%q contains '/', ':', a space or a control character", n)
		}
	}
	return nil
}
