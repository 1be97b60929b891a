package networks

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// Selection is one network a pod asks for in the networks annotation.
type Selection struct {
	// Namespace of the NetworkAttachmentDefinition (the pod's when not given).
	Namespace string
	// Name of the NetworkAttachmentDefinition.
	Name string
	// Interface is the requested interface name in the pod, or "".
	Interface string
	// MAC is the requested MAC address, or "".
	MAC string
	// IPs are the requested addresses (plain IPs; a prefix length given in
	// the annotation is dropped, Neutron's subnet decides it).
	IPs []string
	// DefaultRoute holds the gateways this network's default route uses; non-empty
	// means the pod's default route goes through this interface.
	DefaultRoute []string
	// CNIArgs is the entry's cni-args, a JSON object as given, or nil.
	CNIArgs json.RawMessage
}

// Key is namespace/name.
func (s Selection) Key() string { return s.Namespace + "/" + s.Name }

// selectionJSON is the JSON form of one entry (Network Plumbing WG spec v1.2,
// section 4.1.2). Fields kuryr-dpdk does not use are accepted and ignored.
type selectionJSON struct {
	Name         string          `json:"name"`
	Namespace    string          `json:"namespace,omitempty"`
	IPs          []string        `json:"ips,omitempty"`
	MAC          string          `json:"mac,omitempty"`
	Interface    string          `json:"interface,omitempty"`
	DefaultRoute []string        `json:"default-route,omitempty"`
	CNIArgs      json.RawMessage `json:"cni-args,omitempty"`
}

// ParseSelections parses the value of the k8s.v1.cni.cncf.io/networks
// annotation of a pod in podNamespace. Both forms are accepted: the comma
// form "[namespace/]name[@ifname], ..." and the JSON list form. An empty
// value is no networks.
func ParseSelections(value, podNamespace string) ([]Selection, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return nil, nil
	}
	var (
		sels []Selection
		err  error
	)
	if strings.HasPrefix(v, "[") {
		sels, err = parseJSONSelections(v, podNamespace)
	} else {
		sels, err = parseCommaSelections(v, podNamespace)
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	for i, s := range sels {
		if s.Interface == "" {
			continue
		}
		if j, dup := seen[s.Interface]; dup {
			return nil, annotationError(fmt.Sprintf("[%d].interface", i),
				fmt.Sprintf("interface %q is requested twice (also by entry %d); give each network its own interface name", s.Interface, j))
		}
		seen[s.Interface] = i
	}
	if err := oneDefaultRoutePerFamily(sels); err != nil {
		return nil, err
	}
	return sels, nil
}

// oneDefaultRoutePerFamily: a pod has one default route per IP family, so
// its default-route gateways name each family once, across all entries.
func oneDefaultRoutePerFamily(sels []Selection) error {
	type at struct{ entry, gw int }
	claimed := map[bool]at{} // by "is IPv4"
	for i, s := range sels {
		for j, gw := range s.DefaultRoute {
			v4 := netip.MustParseAddr(gw).Is4()
			if prev, ok := claimed[v4]; ok {
				return annotationError(fmt.Sprintf("[%d].default-route[%d]", i, j), fmt.Sprintf(
					"%s is a second %s default gateway (entry %d already names %s); a pod has one default route per IP family",
					gw, family(v4), prev.entry, sels[prev.entry].DefaultRoute[prev.gw]))
			}
			claimed[v4] = at{i, j}
		}
	}
	return nil
}

func family(v4 bool) string {
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

func annotationError(field, reason string) error {
	return &SpecError{Object: fmt.Sprintf("pod annotation %q", v1alpha1.NetworksAnnotation), Field: field, Reason: reason}
}

func parseJSONSelections(v, podNamespace string) ([]Selection, error) {
	var raw []selectionJSON
	dec := json.NewDecoder(strings.NewReader(v))
	if err := dec.Decode(&raw); err != nil {
		return nil, annotationError("", fmt.Sprintf("not a valid JSON list of networks: %v", err))
	}
	if dec.More() {
		return nil, annotationError("", "unexpected data after the JSON list of networks")
	}
	out := make([]Selection, 0, len(raw))
	for i, r := range raw {
		s := Selection{Namespace: r.Namespace, Name: r.Name, Interface: r.Interface, MAC: r.MAC}
		if s.Namespace == "" {
			s.Namespace = podNamespace
		}
		field := fmt.Sprintf("[%d]", i)
		if err := validateRef(field, s); err != nil {
			return nil, err
		}
		if s.MAC != "" {
			hw, err := net.ParseMAC(s.MAC)
			if err != nil || len(hw) != 6 {
				return nil, annotationError(field+".mac", fmt.Sprintf("%q is not an Ethernet MAC address (want aa:bb:cc:dd:ee:ff)", s.MAC))
			}
			if hw[0]&1 == 1 {
				return nil, annotationError(field+".mac", fmt.Sprintf("%q is a multicast MAC address; a port needs a unicast one", s.MAC))
			}
			s.MAC = hw.String()
		}
		for j, ip := range r.IPs {
			a, err := parseIPOrCIDR(ip)
			if err != nil {
				return nil, annotationError(fmt.Sprintf("%s.ips[%d]", field, j), fmt.Sprintf("%q is not an IP address or CIDR", ip))
			}
			s.IPs = append(s.IPs, a.String())
		}
		for j, gw := range r.DefaultRoute {
			a, err := netip.ParseAddr(strings.TrimSpace(gw))
			if err != nil {
				return nil, annotationError(fmt.Sprintf("%s.default-route[%d]", field, j), fmt.Sprintf("%q is not a gateway IP address", gw))
			}
			s.DefaultRoute = append(s.DefaultRoute, a.String())
		}
		if len(r.CNIArgs) > 0 && string(r.CNIArgs) != "null" {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(r.CNIArgs, &obj); err != nil {
				return nil, annotationError(field+".cni-args", "not a JSON object")
			}
			s.CNIArgs = r.CNIArgs
		}
		out = append(out, s)
	}
	return out, nil
}

func parseIPOrCIDR(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, err
		}
		return p.Addr(), nil
	}
	return netip.ParseAddr(s)
}

func parseCommaSelections(v, podNamespace string) ([]Selection, error) {
	var out []Selection
	for i, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		field := fmt.Sprintf("[%d]", i)
		if item == "" {
			return nil, annotationError(field, "empty network name (stray comma?)")
		}
		s := Selection{Namespace: podNamespace}
		if at := strings.LastIndex(item, "@"); at >= 0 {
			s.Interface = item[at+1:]
			item = item[:at]
			if s.Interface == "" {
				return nil, annotationError(field, fmt.Sprintf("%q has an empty interface name after '@'", item+"@"))
			}
		}
		if slash := strings.Index(item, "/"); slash >= 0 {
			s.Namespace, s.Name = item[:slash], item[slash+1:]
		} else {
			s.Name = item
		}
		if err := validateRef(field, s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func validateRef(field string, s Selection) error {
	if s.Name == "" {
		return annotationError(field+".name", "network name is empty")
	}
	if errs := validation.IsDNS1123Subdomain(s.Name); len(errs) > 0 {
		return annotationError(field+".name", fmt.Sprintf("%q is not a valid NetworkAttachmentDefinition name: %s", s.Name, strings.Join(errs, "; ")))
	}
	if errs := validation.IsDNS1123Label(s.Namespace); len(errs) > 0 {
		return annotationError(field+".namespace", fmt.Sprintf("%q is not a valid namespace: %s", s.Namespace, strings.Join(errs, "; ")))
	}
	if s.Interface != "" {
		if err := ValidateIfName(s.Interface); err != nil {
			return annotationError(field+".interface", err.Error())
		}
	}
	return nil
}

// ValidateIfName checks name is usable as a Linux interface name.
func ValidateIfName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("interface name is empty")
	case len(name) > 15:
		return fmt.Errorf("interface name %q is longer than 15 characters", name)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed", name)
	case strings.ContainsAny(name, "/:@ \t\n\x00"):
		return fmt.Errorf("interface name %q contains '/', ':', '@' or whitespace", name)
	}
	return nil
}
