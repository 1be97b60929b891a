package cniapi

import (
	"regexp"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// The CNI_ARGS keys the Kubernetes runtimes (containerd, CRI-O, Multus) set.
const (
	ArgPodNamespace      = "K8S_POD_NAMESPACE"
	ArgPodName           = "K8S_POD_NAME"
	ArgPodUID            = "K8S_POD_UID"
	ArgPodInfraContainer = "K8S_POD_INFRA_CONTAINER_ID"
	ArgIgnoreUnknown     = "IgnoreUnknown"
)

// CNIArgs is CNI_ARGS parsed: the pod the call is for, and any other keys.
type CNIArgs struct {
	PodNamespace        string `json:"podNamespace,omitempty"`
	PodName             string `json:"podName,omitempty"`
	PodUID              string `json:"podUID,omitempty"`
	PodInfraContainerID string `json:"podInfraContainerID,omitempty"`
	IgnoreUnknown       bool   `json:"ignoreUnknown,omitempty"`
	// Other holds the keys this project does not know, kept as given. They
	// are accepted only with IgnoreUnknown=1 (the convention of
	// types.LoadArgs that every runtime follows).
	Other map[string]string `json:"other,omitempty"`
}

// maxCNIArgsLen bounds CNI_ARGS; real ones are a few hundred bytes.
const maxCNIArgsLen = 64 << 10

var (
	// dnsLabel is an RFC 1123 label (a namespace name).
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// dnsSubdomain is an RFC 1123 subdomain (a pod name).
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// podUID accepts the UUIDs Kubernetes gives pods, and the hex or
	// dash-separated forms static pods get (a config hash).
	podUID = regexp.MustCompile(`^[0-9a-fA-F][0-9a-fA-F-]{0,63}$`)
	// containerID is the charset libcni allows in CNI_CONTAINERID.
	containerID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)
	// argKey is what a CNI_ARGS key may be.
	argKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-]*$`)
)

// ParseCNIArgs parses CNI_ARGS ("K1=V1;K2=V2", any order, empty allowed).
// Malformed pairs, a key given twice with different values (the same value
// again is accepted: Multus repeats keys), invalid Kubernetes names and unknown keys
// without IgnoreUnknown=1 are errors with code 4 (invalid environment
// variables: CNI_ARGS is one) naming the key.
func ParseCNIArgs(s string) (CNIArgs, *types.Error) {
	a, err := parseCNIArgs(s)
	if err != nil {
		return CNIArgs{}, err
	}
	return a, nil
}

// ParseCNIArgsBestEffort parses CNI_ARGS for a DEL, which must not fail on
// them (CNI spec 1.1: DEL is best effort): it returns the pairs that are
// valid, dropping the others, with the error ParseCNIArgs would give (nil
// when there is none) for the caller to report.
func ParseCNIArgsBestEffort(s string) (CNIArgs, *types.Error) {
	return parseCNIArgs(s)
}

// parseCNIArgs returns the valid pairs of s and the first problem found.
func parseCNIArgs(s string) (CNIArgs, *types.Error) {
	var a CNIArgs
	if len(s) > maxCNIArgsLen {
		return CNIArgs{}, badArgs("CNI_ARGS", "longer than %d bytes", maxCNIArgsLen)
	}
	var first *types.Error
	fail := func(e *types.Error) {
		if first == nil {
			first = e
		}
	}
	seen := map[string]string{} // key → its value, canonical
	var unknown []string
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue // "A=1;;B=2" and a trailing ";" are harmless
		}
		k, v, ok := strings.Cut(pair, "=")
		switch {
		case !ok:
			fail(badArgs("CNI_ARGS", "%q is not KEY=VALUE", pair))
			continue
		case !argKey.MatchString(k):
			fail(badArgs("CNI_ARGS", "key %q is not a valid name", k))
			continue
		}
		if prev, again := seen[k]; again {
			// Multus v4 gives a delegate its own K8S_* keys and
			// IgnoreUnknown=true, then the runtime's CNI_ARGS again
			// (IgnoreUnknown=1 among them): a key repeated with the same
			// meaning is accepted, with another it is ambiguous.
			if canonicalArg(k, v) != prev {
				fail(badArgs("CNI_ARGS", "key %s given twice with different values", k))
			}
			continue
		}
		seen[k] = canonicalArg(k, v)
		if err := a.set(k, v); err != nil {
			fail(err)
			continue
		}
		if _, known := knownArgs[k]; !known {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 && !a.IgnoreUnknown {
		fail(badArgs("CNI_ARGS", "unknown key %s (without IgnoreUnknown=1)", unknown[0]))
		a.Other = nil
	}
	return a, first
}

// canonicalArg is v as the value of key k means it: IgnoreUnknown's
// booleans in one spelling, the others as given.
func canonicalArg(k, v string) string {
	if k == ArgIgnoreUnknown {
		switch strings.ToLower(v) {
		case "1", "true":
			return "true"
		case "0", "false":
			return "false"
		}
	}
	return v
}

var knownArgs = map[string]struct{}{
	ArgPodNamespace: {}, ArgPodName: {}, ArgPodUID: {}, ArgPodInfraContainer: {}, ArgIgnoreUnknown: {},
}

func (a *CNIArgs) set(k, v string) *types.Error {
	field := "CNI_ARGS " + k
	switch k {
	case ArgPodNamespace:
		if len(v) > 63 || !dnsLabel.MatchString(v) {
			return badArgs(field, "%q is not a namespace name (RFC 1123 label)", v)
		}
		a.PodNamespace = v
	case ArgPodName:
		if len(v) > 253 || !dnsSubdomain.MatchString(v) {
			return badArgs(field, "%q is not a pod name (RFC 1123 subdomain)", v)
		}
		a.PodName = v
	case ArgPodUID:
		if !podUID.MatchString(v) {
			return badArgs(field, "%q is not a pod UID", v)
		}
		a.PodUID = v
	case ArgPodInfraContainer:
		if len(v) > 256 || !containerID.MatchString(v) {
			return badArgs(field, "%q is not a container ID", v)
		}
		a.PodInfraContainerID = v
	case ArgIgnoreUnknown:
		switch strings.ToLower(v) {
		case "1", "true":
			a.IgnoreUnknown = true
		case "0", "false":
			a.IgnoreUnknown = false
		default:
			return badArgs(field, "%q is not a boolean (1, 0, true, false)", v)
		}
	default:
		if a.Other == nil {
			a.Other = map[string]string{}
		}
		a.Other[k] = v
	}
	return nil
}

// String renders the arguments back into CNI_ARGS form, known keys first in
// a fixed order, then the others sorted: parsing the output gives back a.
func (a CNIArgs) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	if a.IgnoreUnknown {
		add(ArgIgnoreUnknown, "1")
	}
	add(ArgPodNamespace, a.PodNamespace)
	add(ArgPodName, a.PodName)
	add(ArgPodUID, a.PodUID)
	add(ArgPodInfraContainer, a.PodInfraContainerID)
	keys := make([]string, 0, len(a.Other))
	for k := range a.Other {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+a.Other[k])
	}
	return strings.Join(parts, ";")
}

// Validate checks fields set directly (not through ParseCNIArgs), as the
// server does for a request's args; errors have code 4 as ParseCNIArgs'.
func (a CNIArgs) Validate() *types.Error {
	var scratch CNIArgs
	for k, v := range map[string]string{
		ArgPodNamespace: a.PodNamespace, ArgPodName: a.PodName,
		ArgPodUID: a.PodUID, ArgPodInfraContainer: a.PodInfraContainerID,
	} {
		if v == "" {
			continue
		}
		if err := scratch.set(k, v); err != nil {
			return err
		}
	}
	for k, v := range a.Other {
		if _, known := knownArgs[k]; known || !argKey.MatchString(k) {
			return badArgs("CNI_ARGS", "key %q is not a valid extra key", k)
		}
		if strings.ContainsRune(v, ';') {
			return badArgs("CNI_ARGS "+k, "value contains ';'")
		}
	}
	return nil
}
