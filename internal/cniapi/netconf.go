package cniapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
)

// Runtime config keys this plugin reads (declared as capabilities).
const (
	CapDeviceInfoFile   = "CNIDeviceInfoFile"
	CapPodAnnotations   = "io.kubernetes.cri.pod-annotations"
	ValidAttachmentsKey = "cni.dev/valid-attachments"
)

// SupportedVersions are the CNI spec versions the shim and daemon speak.
var SupportedVersions = []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// NetConf is the network configuration of type kuryr-cni: what the runtime
// (primary mode) or Multus (delegate mode, from a NetworkAttachmentDefinition)
// writes on the plugin's stdin.
type NetConf struct {
	CNIVersion   string          `json:"cniVersion"`
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`

	// DaemonSocket is accepted only when it names the node's socket (see
	// NodeConfig and CheckDaemonSocket): the socket is never chosen here.
	DaemonSocket string `json:"daemonSocket,omitempty"`
	// Kuryr holds driver, subnetId, securityGroups, dpdkDriver and mtu.
	// An empty Driver in primary mode means the node's default nested
	// driver.
	netconf.Kuryr

	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitzero"`

	// RawPrevResult is the prevResult given on DEL and CHECK, as sent.
	RawPrevResult json.RawMessage `json:"prevResult,omitempty"`
	// PrevResult is RawPrevResult parsed and converted to the current
	// result version; nil when there was none.
	PrevResult *current.Result `json:"-"`
	// PrevResultErr says why a DEL's prevResult was dropped (see
	// ParseNetConfFor); nil otherwise.
	PrevResultErr *types.Error `json:"-"`

	// ValidAttachments is what GC must keep.
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
}

// RuntimeConfig is the part of the configuration the runtime injects per
// call for the capabilities the plugin declares.
type RuntimeConfig struct {
	// DeviceInfoFile is where to write the NPWG device-info file (Multus).
	DeviceInfoFile string `json:"CNIDeviceInfoFile,omitempty"`
	// PodAnnotations are every annotation of the pod (containerd, CRI-O).
	PodAnnotations map[string]string `json:"io.kubernetes.cri.pod-annotations,omitempty"`
}

// maxConfigLen bounds a configuration; pod annotations can be large.
const maxConfigLen = 1 << 20

// maxSocketPath is the room in sockaddr_un.sun_path, less the final NUL.
const maxSocketPath = 107

var networkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// ParseNetConfFor parses the configuration of a command: as ParseNetConf,
// except that for DEL, which is best effort (CNI spec 1.1), a prevResult
// that does not parse is dropped (PrevResult nil, the reason in
// PrevResultErr) instead of failing the call: DEL works from the
// checkpoints by container ID and interface name, not from prevResult.
func ParseNetConfFor(cmd string, data []byte) (*NetConf, *types.Error) {
	c, err := parseNetConf(data)
	if err != nil {
		return nil, err
	}
	if perr := c.parsePrevResult(); perr != nil {
		if cmd != CmdDel {
			return nil, perr
		}
		c.PrevResult, c.PrevResultErr = nil, perr
	}
	return c, nil
}

// ParseNetConf decodes and validates a kuryr-cni network configuration. Any
// problem is a *types.Error with code 7 whose message names the field.
func ParseNetConf(data []byte) (*NetConf, *types.Error) {
	return ParseNetConfFor(CmdAdd, data)
}

func parseNetConf(data []byte) (*NetConf, *types.Error) {
	if len(data) > maxConfigLen {
		return nil, badField("config", "longer than %d bytes", maxConfigLen)
	}
	var c NetConf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, jsonError("config", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// jsonError turns a decode error into a code-7 error naming the field.
func jsonError(what string, err error) *types.Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return badField(te.Field, "%s must be %s, not a JSON %s", te.Field, te.Type, te.Value)
	}
	return badField(what, "not valid JSON: %v", err)
}

func (c *NetConf) validate() *types.Error {
	if c.CNIVersion == "" {
		return badField("cniVersion", "missing")
	}
	if !slices.Contains(SupportedVersions, c.CNIVersion) {
		return badField("cniVersion", "%q is not one of %s", c.CNIVersion, strings.Join(SupportedVersions, ", "))
	}
	if c.Name == "" {
		return badField("name", "missing")
	}
	if !networkName.MatchString(c.Name) {
		return badField("name", "%q has characters other than letters, digits, _ . -", c.Name)
	}
	if c.Type != netconf.PluginType {
		return badField("type", "%q, want %q", c.Type, netconf.PluginType)
	}
	if c.DaemonSocket != "" {
		if err := checkSocket("daemonSocket", c.DaemonSocket); err != nil {
			return err
		}
	}
	if err := c.Kuryr.Validate(); err != nil {
		var fe *netconf.FieldError
		if errors.As(err, &fe) {
			return badField(fe.Field, "%s", fe.Reason)
		}
		return badField("config", "%v", err)
	}
	if f := c.RuntimeConfig.DeviceInfoFile; f != "" {
		if err := checkPath("runtimeConfig.CNIDeviceInfoFile", f); err != nil {
			return err
		}
	}
	return nil
}

// checkSocket accepts a unix socket path: absolute, clean, short enough.
func checkSocket(field, p string) *types.Error {
	if err := checkPath(field, p); err != nil {
		return err
	}
	if len(p) > maxSocketPath {
		return badField(field, "longer than %d bytes (a unix socket path limit)", maxSocketPath)
	}
	return nil
}

// checkPath accepts absolute, clean paths without NUL bytes.
func checkPath(field, p string) *types.Error {
	if !filepath.IsAbs(p) {
		return badField(field, "%q is not an absolute path", p)
	}
	if filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
		return badField(field, "%q is not a clean path", p)
	}
	return nil
}

func (c *NetConf) parsePrevResult() *types.Error {
	raw := bytes.TrimSpace(c.RawPrevResult)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		c.RawPrevResult = nil
		return nil
	}
	// Results before 1.0.0 may not carry their version: they are in the
	// configuration's version.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return jsonError("prevResult", err)
	}
	v := c.CNIVersion
	if rv, ok := m["cniVersion"]; ok {
		if err := json.Unmarshal(rv, &v); err != nil {
			return badField("prevResult.cniVersion", "not a string")
		}
	} else {
		m["cniVersion"], _ = json.Marshal(v)
		raw, _ = json.Marshal(m)
	}
	r, err := version.NewResult(v, raw)
	if err != nil {
		return badField("prevResult", "%v", err)
	}
	cur, err := current.NewResultFromResult(r)
	if err != nil {
		return badField("prevResult", "%v", err)
	}
	c.PrevResult = cur
	return nil
}
