package daemon

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	cnitypes "github.com/containernetworking/cni/pkg/types"

	"github.com/kuryr-dpdk/kuryr-dpdk/api/v1alpha1"
	"github.com/kuryr-dpdk/kuryr-dpdk/internal/cniapi"
)

// FuzzBindingRequest feeds bindingRequest the KuryrPod status strings the
// daemon reads (MAC, address, gateway, route destination and gateway). It
// holds what its comment promises: it never panics; a value that does not
// parse is a code 999 error naming the interface; what it accepts is fully
// parsed (nothing dropped) and makes a CNI result that encodes. Run longer
// with go test -run '^$' -fuzz FuzzBindingRequest ./internal/daemon/
func FuzzBindingRequest(f *testing.F) {
	f.Add("fa:16:3e:00:00:01", "10.0.0.5/24", "10.0.0.1", "0.0.0.0/0", "10.0.0.1")
	f.Add("fa:16:3e:00:00:01", "fd00::5/64", "fd00::1", "fd00:1::/64", "")
	f.Add("00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", "10.0.0.5/33", "", "10.0.0.0/8", "")
	f.Add("", "10.0.0.5", "10.0.0.1", "10.1.0.0/16", "")
	// Found by this fuzzer: gateways that did not parse were dropped silently.
	f.Add("fa:16:3e:00:00:01", "10.0.0.5/24", "not-an-ip", "10.1.0.0/16", "also-not")
	ir := v1alpha1.InterfaceRequest{IfName: "net1", Network: "ns/dataplane", Driver: v1alpha1.DriverNestedVLAN}
	req := &cniapi.Request{Command: cniapi.CmdAdd, ContainerID: "0123abcd", IfName: "net1", Netns: "/var/run/netns/x"}
	f.Fuzz(func(t *testing.T, mac, ip, gw, dst, rgw string) {
		st := v1alpha1.InterfaceStatus{IfName: "net1", MAC: mac, IPs: []string{ip}, Gateway: gw,
			Routes: []v1alpha1.Route{{Dst: dst, Gateway: rgw}}, MTU: 1450}
		br, err := bindingRequest(req, req.Netns, ir, st)
		if err != nil {
			var cerr *cnitypes.Error
			if !errors.As(err, &cerr) || cerr.Code != cniapi.CodeInternal || !strings.Contains(cerr.Msg, "net1") {
				t.Fatalf("error %#v: want code 999 naming interface net1", err)
			}
			return
		}
		if br.MAC == nil || len(br.IPs) != 1 || br.IPs[0] == nil || len(br.Routes) != 1 || br.Routes[0].Dst == nil {
			t.Fatalf("accepted %+v as %+v: something not parsed", st, br)
		}
		if (gw != "") != (br.Gateway != nil) || (rgw != "") != (br.Routes[0].GW != nil) {
			t.Fatalf("gateway %q / route gateway %q became %v / %v: a value dropped", gw, rgw, br.Gateway, br.Routes[0].GW)
		}
		if _, err := json.Marshal(cniResult(req.Netns, []plugged{{ir: ir, st: st, req: br}})); err != nil {
			t.Fatalf("CNI result of %+v: %v", st, err)
		}
	})
}
