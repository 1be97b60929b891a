package checkpoint

import (
	"errors"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts is a valid record
// that survives Marshal and Parse unchanged. Seeds are in
// testdata/fuzz/FuzzParse; run longer with
// go test -fuzz FuzzParse ./internal/checkpoint/
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"containerID":"c1","ifName":"net1","kind":"dpdk","mac":"fa:16:3e:00:00:01","pciAddress":"0000:00:05.0","originalDriver":"virtio-pci","targetDriver":"uio_pci_generic","created":"2026-11-27T02:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerSchema) {
				t.Fatalf("Parse error %v wraps neither ErrCorrupt nor ErrNewerSchema", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid record: %v", err)
		}
		out, err := Marshal(r)
		if err != nil {
			t.Fatalf("Marshal of a parsed record: %v", err)
		}
		r2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of Marshal output: %v\n%s", err, out)
		}
		if !sameRecord(r, r2) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", r, r2)
		}
	})
}
