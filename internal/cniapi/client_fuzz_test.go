package cniapi

import (
	"errors"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// FuzzDecodeResponse: whatever the daemon answers, the shim's decoding
// never panics and gives either a response (only for HTTP 200) or a CNI
// error with a non-zero code, never both. Run longer with
// go test -run '^$' -fuzz FuzzDecodeResponse ./internal/cniapi/
func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{200, `{"cniVersion":"1.1.0","result":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"fa:16:3e:00:00:01"}]}}`},
		{500, `{"error":{"code":11,"msg":"interfaces of pod default/web-0 not ready","details":"d"}}`},
		{400, `{"error":{"code":7,"msg":"invalid ifName"}}`},
		{500, `{"error":{}}`},
		{502, `<html>bad gateway</html>`},
		{200, `{}`},
		{200, `null`},
		{503, ``},
	} {
		f.Add(s.status, []byte(s.body))
	}
	c := NewClient("/run/kuryr-dpdk/cni.sock")
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		resp, err := c.decodeResponse(CmdAdd, status, body)
		if (resp == nil) == (err == nil) {
			t.Fatalf("response %v and error %v: want exactly one", resp, err)
		}
		if err != nil {
			var cerr *types.Error
			if !errors.As(err, &cerr) || cerr.Code == 0 {
				t.Fatalf("error %#v: want a CNI error with a code", err)
			}
			return
		}
		if status != 200 {
			t.Fatalf("HTTP %d decoded as a success", status)
		}
	})
}
