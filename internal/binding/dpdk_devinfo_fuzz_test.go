package binding

import (
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// FuzzReadDeviceInfo: parsing any file never panics, and a PCI address read
// (or written, when it is valid UTF-8 as sysfs names are) survives a write
// and a read unchanged, which is what CHECK compares. Run longer with
// go test -run '^$' -fuzz FuzzReadDeviceInfo ./internal/binding/
func FuzzReadDeviceInfo(f *testing.F) {
	f.Add([]byte(`{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:00:05.0"}}`), "0000:00:05.0")
	f.Add([]byte(`{"type":"pci","version":"1.1.0","pci":null}`), "")
	f.Add([]byte(`{"type":"pci","pci":{"pci-address":"\u0000../x"}}`), "0000:00:05.0\n")
	f.Add([]byte(`null`), "\"quoted\"")
	f.Add([]byte(`{"type":`), "0000:00:05.0")
	f.Fuzz(func(t *testing.T, data []byte, addr string) {
		dir := t.TempDir()
		di, err := ParseDeviceInfo("in", data)
		if err == nil && di.PCI != nil {
			wantRoundTrip(t, dir, "again", di.PCI.PCIAddress)
		}
		if utf8.ValidString(addr) {
			wantRoundTrip(t, dir, "written", addr)
		}
	})
}

func wantRoundTrip(t *testing.T, dir, name, addr string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := WriteDeviceInfo(dir, path, addr); err != nil {
		t.Fatal(err)
	}
	di, err := ReadDeviceInfo(dir, path)
	if err != nil {
		t.Fatalf("reading what WriteDeviceInfo(%q) wrote: %v", addr, err)
	}
	if di.Type != DeviceInfoTypePCI || di.Version != DeviceInfoVersion || di.PCI == nil || di.PCI.PCIAddress != addr {
		t.Fatalf("WriteDeviceInfo(%q) read back as %+v", addr, di)
	}
}
