package cniapi

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func validRequest(t testing.TB) *Request {
	t.Helper()
	args, err := ParseCNIArgs(containerdArgs)
	if err != nil {
		t.Fatal(err)
	}
	return &Request{
		Command:     CmdAdd,
		ContainerID: "0123abcd",
		Netns:       "/var/run/netns/cni-1234",
		IfName:      "eth0",
		Args:        args,
		Path:        "/opt/cni/bin",
		Config:      mustJSON(t, validConf()),
	}
}

func TestParseRequest(t *testing.T) {
	t.Parallel()
	good := validRequest(t)
	got, err := ParseRequest(bytes.NewReader(mustJSON(t, good)))
	if err != nil {
		t.Fatalf("ParseRequest: %v", err)
	}
	if got.NetConf == nil || got.NetConf.Name != "dpdk-net" || got.Args.PodName != "web-0" || !bytes.Equal(got.Config, good.Config) {
		t.Fatalf("ParseRequest = %+v", got)
	}

	tests := []struct {
		name  string
		edit  func(r *Request)
		field string
		code  uint
	}{
		{"bad command", func(r *Request) { r.Command = "VERSION" }, "command", CodeBadConfig},
		{"no container", func(r *Request) { r.ContainerID = "" }, "containerID", CodeBadConfig},
		{"bad container", func(r *Request) { r.ContainerID = "a b" }, "containerID", CodeBadConfig},
		{"no ifname", func(r *Request) { r.IfName = "" }, "ifName", CodeBadConfig},
		{"long ifname", func(r *Request) { r.IfName = "abcdefghijklmnop" }, "ifName", CodeBadConfig},
		{"ifname with slash", func(r *Request) { r.IfName = "a/b" }, "ifName", CodeBadConfig},
		{"no netns on ADD", func(r *Request) { r.Netns = "" }, "netns", CodeBadConfig},
		{"relative netns", func(r *Request) { r.Netns = "netns/x" }, "netns", CodeBadConfig},
		{"bad pod name", func(r *Request) { r.Args.PodName = "A_B" }, "K8S_POD_NAME", CodeInvalidEnv},
		{"bad extra arg", func(r *Request) { r.Args.Other = map[string]string{"A": "x;y"} }, "CNI_ARGS A", CodeInvalidEnv},
		{"no config", func(r *Request) { r.Config = nil }, "config", CodeBadConfig},
		{"bad config", func(r *Request) { r.Config = []byte(`{"cniVersion":"1.1.0","name":"n","type":"kuryr-cni","mtu":1}`) }, "mtu", CodeBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := validRequest(t)
			tt.edit(r)
			got, err := ParseRequest(bytes.NewReader(mustJSON(t, r)))
			if err == nil {
				t.Fatalf("accepted %+v", got)
			}
			if err.Code != tt.code || !strings.Contains(err.Msg, tt.field) {
				t.Fatalf("error = code %d %q, want code %d naming %q", err.Code, err.Msg, tt.code, tt.field)
			}
		})
	}

	// DEL needs no netns (the runtime may have removed it); GC and STATUS
	// need no container.
	for _, r := range []*Request{
		{Command: CmdDel, ContainerID: "c1", IfName: "eth0", Config: good.Config},
		{Command: CmdGC, Config: good.Config},
		{Command: CmdStatus, Config: good.Config},
	} {
		if _, err := ParseRequest(bytes.NewReader(mustJSON(t, r))); err != nil {
			t.Errorf("%s request: %v", r.Command, err)
		}
	}

	for _, raw := range []string{``, `{`, `{"command":"ADD"} {}`, `{"command":"ADD","bogus":1}`, `{"command":1}`, `{"config":"!!"}`} {
		if _, err := ParseRequest(strings.NewReader(raw)); err == nil || err.Code != CodeBadConfig {
			t.Errorf("ParseRequest(%q) error = %v, want code 7", raw, err)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(mustJSON(f, validRequest(f)))
	f.Add([]byte(`{"command":"DEL","containerID":"c","ifName":"eth0","config":"eyJjbmlWZXJzaW9uIjoiMS4xLjAiLCJuYW1lIjoibiIsInR5cGUiOiJrdXJ5ci1jbmkifQ=="}`))
	f.Add([]byte(`{"command":"GC","config":"e30="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(bytes.NewReader(data))
		if err != nil {
			if (err.Code != CodeBadConfig && err.Code != CodeInvalidEnv) || err.Msg == "" {
				t.Fatalf("error code %d message %q, want code 7 (4 for CNI_ARGS) with a message", err.Code, err.Msg)
			}
			return
		}
		if r.NetConf == nil {
			t.Fatal("accepted request without a parsed NetConf")
		}
		b, merr := json.Marshal(r)
		if merr != nil {
			t.Fatal(merr)
		}
		if _, err := ParseRequest(bytes.NewReader(b)); err != nil {
			t.Fatalf("re-encoded request %s rejected: %v", b, err)
		}
	})
}
