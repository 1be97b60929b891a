package networks

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
)

func fakeNADs(nads map[string]NAD) NADGetter {
	return func(_ context.Context, ns, name string) (NAD, error) {
		n, ok := nads[ns+"/"+name]
		if !ok {
			return NAD{}, fmt.Errorf("%s/%s: %w", ns, name, ErrNADNotFound)
		}
		return n, nil
	}
}

func pod(ns, networks string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vnf",
		Annotations: map[string]string{v1alpha1.NetworksAnnotation: networks}}}
}

var testNADs = fakeNADs(map[string]NAD{
	"pods/mgmt":  {Config: `{"cniVersion":"1.0.0","name":"mgmt","type":"kuryr-cni","driver":"nested-vlan","subnetId":"5a5a5a5a-0000-4000-8000-000000000003"}`},
	"pods/dp":    {Config: `{"cniVersion":"1.0.0","name":"dp","type":"kuryr-cni","driver":"nested-dpdk","subnetId":"5a5a5a5a-0000-4000-8000-000000000004","securityGroups":["5a5a5a5a-0000-4000-8000-000000000005"]}`},
	"pods/kuryr": {Annotations: map[string]string{v1alpha1.KuryrConfigAnnotation: `{"subnetId":"5a5a5a5a-0000-4000-8000-000000000006","driverType":"nested-dpdk"}`}},
	"pods/plain": {Annotations: map[string]string{v1alpha1.KuryrConfigAnnotation: `{"subnetId":"5a5a5a5a-0000-4000-8000-000000000007"}`}},
	"other/dp":   {Config: `{"type":"kuryr-cni","driver":"nested-dpdk","subnetId":"5a5a5a5a-0000-4000-8000-000000000008"}`},
	"pods/mtu":   {Config: `{"type":"kuryr-cni","driver":"nested-macvlan","subnetId":"5a5a5a5a-0000-4000-8000-000000000009","mtu":1400}`},
	"pods/vnf":   {Config: `{"type":"kuryr-cni","driver":"nested-dpdk","subnetId":"5a5a5a5a-0000-4000-8000-00000000000a","portSecurityEnabled":false}`},
	"pods/pairs": {Config: `{"type":"kuryr-cni","driver":"nested-vlan","subnetId":"5a5a5a5a-0000-4000-8000-00000000000b","allowedAddressPairs":[{"ipAddress":"10.9.0.0/24"},{"ipAddress":"10.9.1.1","macAddress":"fa:16:3e:00:00:09"}]}`},
	"pods/open":  {Config: `{"type":"kuryr-cni","subnetId":"5a5a5a5a-0000-4000-8000-00000000000c","portSecurityEnabled":false}`},
	"pods/bad":   {Config: `{"type":"kuryr-cni","driver":"nested-sriov","subnetId":"5a5a5a5a-0000-4000-8000-000000000001"}`},
})

var primary = Defaults{Primary: true, Driver: v1alpha1.DriverNestedVLAN, SubnetID: "sub-pod", SecurityGroups: []string{"sg-default"}}

func TestPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		pod      *corev1.Pod
		defaults Defaults
		want     []v1alpha1.InterfaceRequest
	}{
		{name: "primary only", pod: pod("pods", ""), defaults: primary, want: []v1alpha1.InterfaceRequest{
			{IfName: "eth0", Driver: "nested-vlan", SubnetID: "sub-pod", SecurityGroups: []string{"sg-default"}, DefaultRoute: true},
		}},
		{name: "primary + mgmt + dpdk, multus naming", pod: pod("pods", "mgmt,dp@dpdk0,kuryr"), defaults: primary, want: []v1alpha1.InterfaceRequest{
			{IfName: "eth0", Driver: "nested-vlan", SubnetID: "sub-pod", SecurityGroups: []string{"sg-default"}, DefaultRoute: true},
			{IfName: "net1", Network: "pods/mgmt", Driver: "nested-vlan", SubnetID: "5a5a5a5a-0000-4000-8000-000000000003", SecurityGroups: []string{"sg-default"}},
			{IfName: "dpdk0", Network: "pods/dp", Driver: "nested-dpdk", SubnetID: "5a5a5a5a-0000-4000-8000-000000000004", SecurityGroups: []string{"5a5a5a5a-0000-4000-8000-000000000005"}, DPDKDriver: "uio_pci_generic"},
			{IfName: "net3", Network: "pods/kuryr", Driver: "nested-dpdk", SubnetID: "5a5a5a5a-0000-4000-8000-000000000006", SecurityGroups: []string{"sg-default"}, DPDKDriver: "uio_pci_generic"},
		}},
		{name: "delegate mode has no eth0; default driver for plain kuryr NAD", pod: pod("pods", "plain"),
			defaults: Defaults{Driver: v1alpha1.DriverNestedMACVLAN, DPDKDriver: "vfio-pci"}, want: []v1alpha1.InterfaceRequest{
				{IfName: "net1", Network: "pods/plain", Driver: "nested-macvlan", SubnetID: "5a5a5a5a-0000-4000-8000-000000000007"},
			}},
		{name: "default route claimed by a network", pod: pod("pods", `[{"name":"mgmt","default-route":["10.0.0.1"],"ips":["10.0.0.9/24"],"mac":"02:00:00:00:00:01"}]`), defaults: primary,
			want: []v1alpha1.InterfaceRequest{
				{IfName: "eth0", Driver: "nested-vlan", SubnetID: "sub-pod", SecurityGroups: []string{"sg-default"}},
				{IfName: "net1", Network: "pods/mgmt", Driver: "nested-vlan", SubnetID: "5a5a5a5a-0000-4000-8000-000000000003", SecurityGroups: []string{"sg-default"}, DefaultRoute: true,
					DefaultRouteGateways: []string{"10.0.0.1"}, IPs: []string{"10.0.0.9"}, MAC: "02:00:00:00:00:01"},
			}},
		{name: "every ip and both default gateways passed on", pod: pod("pods", `[{"name":"mgmt","default-route":["10.0.0.1","fd00::1"],"ips":["10.0.0.9/24","10.0.0.10","fd00::9"]}]`), defaults: primary,
			want: []v1alpha1.InterfaceRequest{
				{IfName: "eth0", Driver: "nested-vlan", SubnetID: "sub-pod", SecurityGroups: []string{"sg-default"}},
				{IfName: "net1", Network: "pods/mgmt", Driver: "nested-vlan", SubnetID: "5a5a5a5a-0000-4000-8000-000000000003", SecurityGroups: []string{"sg-default"}, DefaultRoute: true,
					DefaultRouteGateways: []string{"10.0.0.1", "fd00::1"}, IPs: []string{"10.0.0.9", "10.0.0.10", "fd00::9"}},
			}},
		{name: "VNF options: port security off takes no default security groups; address pairs passed on", pod: pod("pods", "vnf,pairs"), defaults: primary,
			want: []v1alpha1.InterfaceRequest{
				{IfName: "eth0", Driver: "nested-vlan", SubnetID: "sub-pod", SecurityGroups: []string{"sg-default"}, DefaultRoute: true},
				{IfName: "net1", Network: "pods/vnf", Driver: "nested-dpdk", SubnetID: "5a5a5a5a-0000-4000-8000-00000000000a", DPDKDriver: "uio_pci_generic", PortSecurityEnabled: ptr(false)},
				{IfName: "net2", Network: "pods/pairs", Driver: "nested-vlan", SubnetID: "5a5a5a5a-0000-4000-8000-00000000000b", SecurityGroups: []string{"sg-default"},
					AllowedAddressPairs: []v1alpha1.AddressPair{{IPAddress: "10.9.0.0/24"}, {IPAddress: "10.9.1.1", MACAddress: "fa:16:3e:00:00:09"}}},
			}},
		{name: "NAD mtu and cni-args passed on", pod: pod("pods", `[{"name":"mtu","cni-args":{"mode":"x","n":1}}]`), defaults: Defaults{}, want: []v1alpha1.InterfaceRequest{
			{IfName: "net1", Network: "pods/mtu", Driver: "nested-macvlan", SubnetID: "5a5a5a5a-0000-4000-8000-000000000009", MTU: 1400,
				CNIArgs: &runtime.RawExtension{Raw: []byte(`{"mode":"x","n":1}`)}},
		}},
		{name: "cross namespace when allowed", pod: pod("pods", "other/dp"), defaults: Defaults{AllowCrossNamespace: true, DPDKDriver: "vfio-pci"}, want: []v1alpha1.InterfaceRequest{
			{IfName: "net1", Network: "other/dp", Driver: "nested-dpdk", SubnetID: "5a5a5a5a-0000-4000-8000-000000000008", DPDKDriver: "vfio-pci"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Plan(context.Background(), tt.pod, testNADs, tt.defaults)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Plan\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestPlanErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		pod       *corev1.Pod
		defaults  Defaults
		wantErr   string
		spec      bool // a SpecError
		nadAbsent bool // wraps ErrNADNotFound
	}{
		{name: "malformed annotation", pod: pod("pods", `[{"name":`), defaults: primary, wantErr: "not a valid JSON list", spec: true},
		{name: "missing NAD", pod: pod("pods", "nope"), defaults: primary, wantErr: "network pods/nope requested by pod pods/vnf", nadAbsent: true},
		{name: "cross namespace refused", pod: pod("pods", "other/dp"), defaults: primary, wantErr: "another namespace", spec: true},
		{name: "unknown driver", pod: pod("pods", "bad"), defaults: primary, wantErr: `unknown driver "nested-sriov"`, spec: true},
		{name: "explicit name clashes with generated", pod: pod("pods", "mgmt,dp@net1"), defaults: primary, wantErr: `"net1" is already taken`, spec: true},
		{name: "eth0 requested in primary mode", pod: pod("pods", "mgmt@eth0"), defaults: primary, wantErr: `"eth0" is already taken`, spec: true},
		{name: "default route on a DPDK network", pod: pod("pods", `[{"name":"mgmt"},{"name":"dp","default-route":["10.0.0.1"]}]`), defaults: primary,
			wantErr: "[1].default-route: network pods/dp is nested-dpdk", spec: true},
		{name: "cni-args not an object", pod: pod("pods", `[{"name":"mtu","cni-args":["x"]}]`), defaults: primary, wantErr: "[0].cni-args: not a JSON object", spec: true},
		{name: "no default driver", pod: pod("pods", "plain"), defaults: Defaults{}, wantErr: "no default driver", spec: true},
		{name: "port security off on the default driver nested-macvlan", pod: pod("pods", "open"), defaults: Defaults{Driver: v1alpha1.DriverNestedMACVLAN},
			wantErr: "NetworkAttachmentDefinition pods/open: portSecurityEnabled: portSecurityEnabled and allowedAddressPairs need driver nested-vlan or nested-dpdk", spec: true},
		{name: "two IPv4 default gateways", pod: pod("pods", `[{"name":"mgmt","default-route":["10.0.0.1"]},{"name":"pairs","default-route":["10.9.0.1"]}]`), defaults: primary,
			wantErr: "[1].default-route[0]: 10.9.0.1 is a second IPv4 default gateway (entry 0 already names 10.0.0.1)", spec: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Plan(context.Background(), tt.pod, testNADs, tt.defaults)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if IsSpecError(err) != tt.spec {
				t.Fatalf("IsSpecError(%v) = %v, want %v", err, !tt.spec, tt.spec)
			}
			if errors.Is(err, ErrNADNotFound) != tt.nadAbsent {
				t.Fatalf("errors.Is(%v, ErrNADNotFound) = %v, want %v", err, !tt.nadAbsent, tt.nadAbsent)
			}
		})
	}
}
