package daemon

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// TestBindingRequestCarriesCNIArgs: an interface's cni-args (the KuryrPod
// spec's cniArgs, from the pod's networks annotation entry) reach the
// binding driver's request as they are; an interface without cni-args has
// none there.
func TestBindingRequestCarriesCNIArgs(t *testing.T) {
	t.Parallel()
	req := &cniapi.Request{Command: cniapi.CmdAdd, ContainerID: "0123abcd", IfName: "net1", Netns: "/var/run/netns/x"}
	st := v1alpha1.InterfaceStatus{IfName: "net1", MAC: "fa:16:3e:00:00:01", IPs: []string{"10.0.0.5/24"}, MTU: 1450}
	const args = `{"mode":"x","n":1}`
	for _, tc := range []struct {
		name string
		raw  *runtime.RawExtension
		want string
	}{
		{"with cni-args", &runtime.RawExtension{Raw: []byte(args)}, args},
		{"without", nil, ""},
	} {
		ir := v1alpha1.InterfaceRequest{IfName: "net1", Network: "ns/dataplane", Driver: v1alpha1.DriverNestedMACVLAN, CNIArgs: tc.raw}
		br, err := bindingRequest(req, req.Netns, ir, st)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(br.CNIArgs) != tc.want {
			t.Errorf("%s: binding request cni-args %q, want %q", tc.name, br.CNIArgs, tc.want)
		}
	}
}
