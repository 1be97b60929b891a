package networks

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

// NAD is what the planner needs of a NetworkAttachmentDefinition.
type NAD struct {
	Annotations map[string]string
	Config      string
}

// NADGetter returns a NetworkAttachmentDefinition. It returns an error
// wrapping ErrNADNotFound when there is none.
type NADGetter func(ctx context.Context, namespace, name string) (NAD, error)

// Defaults are the cluster's settings that a pod's request falls back on.
type Defaults struct {
	// Primary: kuryr-dpdk is the cluster's primary CNI and gives every pod
	// eth0 from Driver/SubnetID/SecurityGroups. False in delegate-only mode.
	Primary bool
	// Driver is the node's default driver (nested-vlan or nested-macvlan).
	Driver         v1alpha1.Driver
	SubnetID       string
	SecurityGroups []string
	// DPDKDriver is the default kernel driver for nested-dpdk devices.
	DPDKDriver string
	// AllowCrossNamespace lets a pod use a NAD of another namespace.
	AllowCrossNamespace bool
}

// Plan works out the interfaces pod needs, in CNI order: eth0 first in
// primary mode, then one per entry of the networks annotation, named as
// Multus names them (net1, net2, … by position) unless the entry names one.
// Errors are *SpecError for the user's mistakes, wrap ErrNADNotFound for a
// missing NAD, and are otherwise the getter's.
func Plan(ctx context.Context, pod *corev1.Pod, get NADGetter, d Defaults) ([]v1alpha1.InterfaceRequest, error) {
	sels, err := ParseSelections(pod.Annotations[v1alpha1.NetworksAnnotation], pod.Namespace)
	if err != nil {
		return nil, err
	}
	var out []v1alpha1.InterfaceRequest
	used := map[string]bool{}
	defaultRouteClaimed := false
	for _, s := range sels {
		if len(s.DefaultRoute) > 0 {
			defaultRouteClaimed = true
		}
	}
	if d.Primary {
		out = append(out, v1alpha1.InterfaceRequest{
			IfName: "eth0", Driver: d.Driver, SubnetID: d.SubnetID,
			SecurityGroups: d.SecurityGroups, DefaultRoute: !defaultRouteClaimed,
		})
		used["eth0"] = true
	}
	for i, s := range sels {
		field := fmt.Sprintf("[%d]", i)
		if s.Namespace != pod.Namespace && !d.AllowCrossNamespace {
			return nil, annotationError(field+".namespace", fmt.Sprintf(
				"network %s is in another namespace than the pod (%s); referencing NADs across namespaces is disabled in the controller's configuration", s.Key(), pod.Namespace))
		}
		nad, err := get(ctx, s.Namespace, s.Name)
		if err != nil {
			if errors.Is(err, ErrNADNotFound) {
				return nil, fmt.Errorf("network %s requested by pod %s/%s: %w", s.Key(), pod.Namespace, pod.Name, err)
			}
			return nil, fmt.Errorf("get NetworkAttachmentDefinition %s: %w", s.Key(), err)
		}
		cfg, err := ConfigFromNAD(s.Key(), nad.Annotations, nad.Config)
		if err != nil {
			return nil, err
		}
		ifName := s.Interface
		if ifName == "" {
			ifName = fmt.Sprintf("net%d", i+1)
		}
		if used[ifName] {
			return nil, annotationError(field+".interface", fmt.Sprintf("interface %q is already taken by another interface of the pod", ifName))
		}
		used[ifName] = true
		req := v1alpha1.InterfaceRequest{
			IfName: ifName, Network: s.Key(), Driver: cfg.Driver, SubnetID: cfg.SubnetID,
			SecurityGroups: cfg.SecurityGroups, MAC: s.MAC, IPs: s.IPs, DefaultRoute: len(s.DefaultRoute) > 0,
			DefaultRouteGateways: s.DefaultRoute, MTU: cfg.MTU, PortSecurityEnabled: cfg.PortSecurityEnabled,
		}
		for _, ap := range cfg.AllowedAddressPairs {
			req.AllowedAddressPairs = append(req.AllowedAddressPairs, v1alpha1.AddressPair{IPAddress: ap.IPAddress, MACAddress: ap.MACAddress})
		}
		if s.CNIArgs != nil {
			req.CNIArgs = &runtime.RawExtension{Raw: s.CNIArgs}
		}
		if req.Driver == "" {
			req.Driver = d.Driver
		}
		if req.Driver == "" {
			return nil, &SpecError{Object: "NetworkAttachmentDefinition " + s.Key(), Field: "driver",
				Reason: "no driver given and the controller has no default driver configured"}
		}
		if req.Driver == v1alpha1.DriverNestedMACVLAN && (req.PortSecurityEnabled != nil || len(req.AllowedAddressPairs) > 0) {
			// The node's default driver, which the NAD left open.
			return nil, &SpecError{Object: "NetworkAttachmentDefinition " + s.Key(), Field: "portSecurityEnabled",
				Reason: "portSecurityEnabled and allowedAddressPairs need driver nested-vlan or nested-dpdk; the node's default driver is nested-macvlan, whose traffic passes the node VM's port"}
		}
		if len(req.SecurityGroups) == 0 && (req.PortSecurityEnabled == nil || *req.PortSecurityEnabled) {
			// A port without port security takes no security groups.
			req.SecurityGroups = d.SecurityGroups
		}
		if req.Driver == v1alpha1.DriverNestedDPDK {
			if req.DefaultRoute {
				return nil, annotationError(field+".default-route", fmt.Sprintf(
					"network %s is nested-dpdk: its device is bound to a DPDK driver and has no kernel interface to carry a route; ask for the default route on a kernel network", s.Key()))
			}
			req.DPDKDriver = cfg.DPDKDriver
			if req.DPDKDriver == "" {
				req.DPDKDriver = d.DPDKDriver
			}
			if req.DPDKDriver == "" {
				req.DPDKDriver = v1alpha1.DPDKDriverUIOPCIGeneric
			}
		}
		out = append(out, req)
	}
	return out, nil
}
