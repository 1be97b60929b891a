package daemon

import (
	"context"
	"encoding/json"
	"net"

	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// updateStatus applies change to the KuryrPod of pod uid, reading it fresh
// from the API server and retrying on conflicts (the controller writes the
// same status). A KuryrPod that is gone or belongs to another pod now is
// left alone.
func (d *Daemon) updateStatus(ctx context.Context, key types.NamespacedName, uid types.UID, change func(*v1alpha1.KuryrPodStatus)) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var kp v1alpha1.KuryrPod
		if err := d.reader.Get(ctx, key, &kp); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		if uid != "" && kp.Spec.PodUID != uid {
			return nil
		}
		before := kp.Status.DeepCopy()
		change(&kp.Status)
		if equalStatus(before, &kp.Status) {
			return nil
		}
		return d.client.Status().Update(ctx, &kp)
	})
}

func equalStatus(a, b *v1alpha1.KuryrPodStatus) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// writeNetworkStatus sets the Network Plumbing WG network-status annotation
// of the pod (primary mode; under Multus, Multus writes it).
func (d *Daemon) writeNetworkStatus(ctx context.Context, key types.NamespacedName, primaryNetwork string, got []plugged) error {
	var list []nadv1.NetworkStatus
	for _, p := range got {
		ns := nadv1.NetworkStatus{
			Name: p.req.Network, Interface: p.req.IfName, Mac: p.status.MAC, Mtu: p.status.MTU,
			Default: p.req.Network == "",
		}
		if ns.Default {
			ns.Name = primaryNetwork
		}
		for _, c := range p.status.IPs {
			if ip, _, err := net.ParseCIDR(c); err == nil {
				ns.IPs = append(ns.IPs, ip.String())
			}
		}
		if p.status.DNS != nil {
			ns.DNS = nadv1.DNS{Nameservers: p.status.DNS.Nameservers, Domain: p.status.DNS.Domain, Search: p.status.DNS.Search}
		}
		if p.status.PCIAddress != "" {
			ns.DeviceInfo = &nadv1.DeviceInfo{Type: nadv1.DeviceInfoTypePCI, Version: nadv1.DeviceInfoVersion,
				Pci: &nadv1.PciDevice{PciAddress: p.status.PCIAddress}}
		}
		list = append(list, ns)
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name = key.Namespace, key.Name
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{v1alpha1.NetworkStatusAnnotation: string(b)}}})
	if err != nil {
		return err
	}
	return d.client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch))
}

// buildResult is the CNI result: every interface (pciID for DPDK devices),
// every address (a DPDK device's too: the application configures itself
// from them), routes and DNS.
func buildResult(req *cniapi.Request, got []plugged) *current.Result {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	for i, p := range got {
		idx := i
		iface := &current.Interface{Name: p.req.IfName, Mac: p.status.MAC, Mtu: p.status.MTU, Sandbox: req.Netns}
		if p.status.PCIAddress != "" {
			iface.PciID = p.status.PCIAddress
		}
		res.Interfaces = append(res.Interfaces, iface)
		for _, c := range p.status.IPs {
			ip, n, err := net.ParseCIDR(c)
			if err != nil {
				continue
			}
			n.IP = ip
			cfg := &current.IPConfig{Interface: &idx, Address: *n}
			if gw := net.ParseIP(p.status.Gateway); gw != nil && (gw.To4() == nil) == (ip.To4() == nil) {
				cfg.Gateway = gw
			}
			res.IPs = append(res.IPs, cfg)
		}
		for _, r := range p.status.Routes {
			if _, dst, err := net.ParseCIDR(r.Dst); err == nil {
				res.Routes = append(res.Routes, &cnitypes.Route{Dst: *dst, GW: net.ParseIP(r.Gateway)})
			}
		}
		if p.status.DNS != nil && len(res.DNS.Nameservers) == 0 {
			res.DNS = cnitypes.DNS{Nameservers: p.status.DNS.Nameservers, Domain: p.status.DNS.Domain, Search: p.status.DNS.Search}
		}
	}
	return res
}

// Status implements cniapi.Handler: ready once the informers have synced.
func (d *Daemon) Status(_ context.Context, _ *cniapi.Request) error {
	if err := d.Ready(); err != nil {
		return cniErr(cniapi.CodePluginNotAvailable, "%v", err)
	}
	return nil
}
