package daemon

import (
	"context"
	"encoding/json"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// updateStatus applies change to the KuryrPod of pod uid, retrying on
// conflicts (the controller writes the same status). A KuryrPod that is
// gone or belongs to another pod now is left alone.
//
// The first try is made on the informer's copy (the daemon watches its
// node's KuryrPods; an ADD has just seen the pod's interfaces Active
// there): a write from a copy that is no longer the latest conflicts and
// changes nothing. Whatever that try cannot settle (a conflict, no copy
// yet, a copy of another pod, or a copy to which change changes nothing,
// which may be a copy from before the change is due) is done as before,
// from the API server's own fresh copy: the common case costs the API
// server one write and no read.
func (d *Daemon) updateStatus(ctx context.Context, key types.NamespacedName, uid types.UID, change func(*v1alpha1.KuryrPodStatus)) error {
	if kp, err := d.changed(ctx, d.client, key, uid, change); err == nil && kp != nil {
		err := d.client.Status().Update(ctx, kp)
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case !apierrors.IsConflict(err):
			return err
		}
	}
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		kp, err := d.changed(ctx, d.reader, key, uid, change)
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil || kp == nil:
			return err
		}
		return d.client.Status().Update(ctx, kp)
	})
}

// changed reads the KuryrPod key with r and applies change to its status.
// It returns the KuryrPod to write, or nil when there is nothing to write
// (it is another pod's than uid, or change changes nothing); an error is
// the read's.
func (d *Daemon) changed(ctx context.Context, r client.Reader, key types.NamespacedName, uid types.UID,
	change func(*v1alpha1.KuryrPodStatus)) (*v1alpha1.KuryrPod, error) {
	var kp v1alpha1.KuryrPod
	if err := r.Get(ctx, key, &kp); err != nil {
		return nil, err
	}
	if uid != "" && kp.Spec.PodUID != uid {
		return nil, nil
	}
	before := kp.Status.DeepCopy()
	change(&kp.Status)
	if equalStatus(before, &kp.Status) {
		return nil, nil
	}
	return &kp, nil
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
			Name: p.ir.Network, Interface: p.ir.IfName, Mac: p.req.MAC.String(), Mtu: p.req.MTU,
			Default: p.ir.Network == "",
		}
		if ns.Default {
			ns.Name = primaryNetwork
		}
		for _, n := range p.req.IPs {
			ns.IPs = append(ns.IPs, n.IP.String())
		}
		if dns := p.st.DNS; dns != nil {
			ns.DNS = nadv1.DNS{Nameservers: dns.Nameservers, Domain: dns.Domain, Search: dns.Search}
		}
		if p.res.PCIAddress != "" {
			ns.DeviceInfo = &nadv1.DeviceInfo{Type: nadv1.DeviceInfoTypePCI, Version: nadv1.DeviceInfoVersion,
				Pci: &nadv1.PciDevice{PciAddress: p.res.PCIAddress}}
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

// Status implements cniapi.Handler: ready once the informers have synced.
func (d *Daemon) Status(_ context.Context, _ *cniapi.Request) error {
	if err := d.Ready(); err != nil {
		return cniErr(cniapi.CodePluginNotAvailable, "%v", err)
	}
	return nil
}
