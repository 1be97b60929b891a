package cniapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/netconf"
)

const (
	sgA     = "0b4c5e1a-8f9d-4e2b-9c3a-1d2e3f4a5b6c"
	sgB     = "1c5d6f2b-9a0e-4f3c-8d4b-2e3f4a5b6c7d"
	subnetA = "2d6e7a3c-0b1f-4a4d-9e5c-3f4a5b6c7d8e"
)

// validConf is a delegate configuration as Multus would pass it from a
// NetworkAttachmentDefinition, with runtime config filled in.
func validConf() map[string]any {
	return map[string]any{
		"cniVersion":     "1.1.0",
		"name":           "dpdk-net",
		"type":           "kuryr-cni",
		"daemonSocket":   "/run/kuryr-dpdk/cni.sock",
		"driver":         "nested-dpdk",
		"subnetId":       subnetA,
		"dpdkDriver":     "vfio-pci",
		"securityGroups": []string{sgA, sgB},
		"mtu":            1450,
		"runtimeConfig": map[string]any{
			"CNIDeviceInfoFile":                 "/var/run/k8s.cni.cncf.io/devinfo/cni/x-net1.json",
			"io.kubernetes.cri.pod-annotations": map[string]string{"k8s.v1.cni.cncf.io/networks": "dpdk-net"},
		},
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseNetConfValid(t *testing.T) {
	t.Parallel()
	c, err := ParseNetConf(mustJSON(t, validConf()))
	if err != nil {
		t.Fatalf("ParseNetConf: %v", err)
	}
	if c.Driver != netconf.DriverNestedDPDK || c.DPDKDriver != netconf.DPDKDriverVFIO || c.SubnetID != subnetA || c.MTU != 1450 ||
		len(c.SecurityGroups) != 2 || c.DaemonSocket != "/run/kuryr-dpdk/cni.sock" {
		t.Fatalf("fields not decoded: %+v", c)
	}
	if c.RuntimeConfig.DeviceInfoFile == "" || c.RuntimeConfig.PodAnnotations["k8s.v1.cni.cncf.io/networks"] != "dpdk-net" {
		t.Fatalf("runtimeConfig not decoded: %+v", c.RuntimeConfig)
	}
	if c.PrevResult != nil {
		t.Fatalf("PrevResult = %+v without a prevResult", c.PrevResult)
	}

	// Primary mode: only the required fields.
	if _, err := ParseNetConf([]byte(`{"cniVersion":"0.3.1","name":"kuryr","type":"kuryr-cni"}`)); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
}

func TestParseNetConfPrevResult(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ver, prev string }{
		{"1.0.0", `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"fa:16:3e:00:00:01","sandbox":"/var/run/netns/x"}],"ips":[{"address":"10.0.0.5/24","gateway":"10.0.0.1","interface":0}]}`},
		// 0.4.0 results carry "version" per IP; without cniVersion the config's applies.
		{"0.4.0", `{"interfaces":[{"name":"eth0"}],"ips":[{"version":"4","address":"10.0.0.5/24","interface":0}]}`},
	} {
		conf := validConf()
		conf["cniVersion"] = tc.ver
		conf["prevResult"] = json.RawMessage(tc.prev)
		c, err := ParseNetConf(mustJSON(t, conf))
		if err != nil {
			t.Fatalf("%s: ParseNetConf: %v", tc.ver, err)
		}
		if c.PrevResult == nil || len(c.PrevResult.IPs) != 1 || c.PrevResult.IPs[0].Address.String() != "10.0.0.5/24" {
			t.Fatalf("%s: PrevResult = %+v", tc.ver, c.PrevResult)
		}
	}
}

func TestParseNetConfInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(m map[string]any)
		field string // the message must name it
	}{
		{"missing cniVersion", func(m map[string]any) { delete(m, "cniVersion") }, "cniVersion"},
		{"unsupported cniVersion", func(m map[string]any) { m["cniVersion"] = "0.2.0" }, "cniVersion"},
		{"missing name", func(m map[string]any) { delete(m, "name") }, "name"},
		{"bad name", func(m map[string]any) { m["name"] = "a b" }, "name"},
		{"wrong type", func(m map[string]any) { m["type"] = "macvlan" }, "type"},
		{"relative socket", func(m map[string]any) { m["daemonSocket"] = "run/cni.sock" }, "daemonSocket"},
		{"unclean socket", func(m map[string]any) { m["daemonSocket"] = "/run/../cni.sock" }, "daemonSocket"},
		{"long socket", func(m map[string]any) { m["daemonSocket"] = "/" + strings.Repeat("s", 120) }, "daemonSocket"},
		{"bad driver", func(m map[string]any) { m["driver"] = "sriov" }, "driver"},
		{"bad subnet", func(m map[string]any) { m["subnetId"] = "subnet-1" }, "subnetId"},
		{"bad dpdk driver", func(m map[string]any) { m["dpdkDriver"] = "igb_uio" }, "dpdkDriver"},
		{"dpdk driver on vlan", func(m map[string]any) { m["driver"] = "nested-vlan" }, "dpdkDriver"},
		{"bad security group", func(m map[string]any) { m["securityGroups"] = []string{sgA, "default"} }, "securityGroups[1]"},
		{"duplicate security group", func(m map[string]any) { m["securityGroups"] = []string{sgA, sgA} }, "securityGroups[1]"},
		{"security groups not a list", func(m map[string]any) { m["securityGroups"] = sgA }, "securityGroups"},
		{"mtu too small", func(m map[string]any) { m["mtu"] = 20 }, "mtu"},
		{"mtu too big", func(m map[string]any) { m["mtu"] = 70000 }, "mtu"},
		{"mtu a string", func(m map[string]any) { m["mtu"] = "1500" }, "mtu"},
		{"relative device info file", func(m map[string]any) {
			m["runtimeConfig"] = map[string]any{"CNIDeviceInfoFile": "devinfo.json"}
		}, "runtimeConfig.CNIDeviceInfoFile"},
		{"annotations not a map", func(m map[string]any) {
			m["runtimeConfig"] = map[string]any{"io.kubernetes.cri.pod-annotations": []string{"x"}}
		}, "io.kubernetes.cri.pod-annotations"},
		{"prevResult garbage", func(m map[string]any) { m["prevResult"] = map[string]any{"ips": "x"} }, "prevResult"},
		{"prevResult version unknown", func(m map[string]any) { m["prevResult"] = map[string]any{"cniVersion": "9.9.9"} }, "prevResult"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := validConf()
			tt.edit(m)
			c, err := ParseNetConf(mustJSON(t, m))
			if err == nil {
				t.Fatalf("ParseNetConf accepted %+v", c)
			}
			if err.Code != CodeBadConfig || !strings.Contains(err.Msg, tt.field) {
				t.Fatalf("error = code %d %q, want code 7 naming %q", err.Code, err.Msg, tt.field)
			}
		})
	}
	for _, raw := range []string{"", "{", "[]", "null x", strings.Repeat(" ", maxConfigLen+1)} {
		if c, err := ParseNetConf([]byte(raw)); err == nil || err.Code != CodeBadConfig {
			t.Errorf("ParseNetConf(%.20q) = %+v, %v; want code 7", raw, c, err)
		}
	}
}

func FuzzParseNetConf(f *testing.F) {
	f.Add(mustJSON(f, validConf()))
	f.Add([]byte(`{"cniVersion":"0.4.0","name":"n","type":"kuryr-cni","prevResult":{"ips":[{"version":"4","address":"10.0.0.5/24"}]}}`))
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","type":"kuryr-cni","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseNetConf(data)
		if err != nil {
			if err.Code != CodeBadConfig || err.Msg == "" {
				t.Fatalf("error code %d message %q, want code 7 with a message", err.Code, err.Msg)
			}
			return
		}
		// What was accepted is accepted again once re-encoded.
		b, merr := json.Marshal(c)
		if merr != nil {
			t.Fatalf("marshal accepted config: %v", merr)
		}
		if _, err := ParseNetConf(b); err != nil {
			t.Fatalf("re-encoded config %s rejected: %v", b, err)
		}
	})
}

// TestParseNetConfForDelDropsBadPrevResult: a prevResult that does not parse
// fails ADD and CHECK (code 7) but not DEL, which goes on without it.
func TestParseNetConfForDelDropsBadPrevResult(t *testing.T) {
	t.Parallel()
	raw := []byte(`{"cniVersion":"1.1.0","name":"n","type":"kuryr-cni","prevResult":{"cniVersion":"1.1.0","ips":"x"}}`)
	for _, cmd := range []string{CmdAdd, CmdCheck} {
		if _, err := ParseNetConfFor(cmd, raw); err == nil || err.Code != CodeBadConfig || !strings.Contains(err.Msg, "prevResult") {
			t.Errorf("%s: error %v, want code 7 naming prevResult", cmd, err)
		}
	}
	c, err := ParseNetConfFor(CmdDel, raw)
	if err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if c.PrevResult != nil || c.PrevResultErr == nil || !strings.Contains(c.PrevResultErr.Msg, "prevResult") {
		t.Fatalf("DEL: PrevResult %+v, PrevResultErr %v; want none, and why", c.PrevResult, c.PrevResultErr)
	}
}
