package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzOptionsLoadFile: any controller config file either loads or fails
// with an error naming the file, and Validate copes with whatever loaded.
// Run longer with
// go test -run '^$' -fuzz FuzzOptionsLoadFile -parallel 1 ./internal/controller/
func FuzzOptionsLoadFile(f *testing.F) {
	f.Add([]byte("clusterID: prod\nprimary: true\npodSubnetID: s1\ndefaultDriver: nested-macvlan\nactiveTimeout: 45s\nworkerSubnetIDs: [w1, w2]\n"))
	f.Add([]byte("activeTimeout: soon\n"))
	f.Add([]byte("podSubnet: typo\n"))
	f.Add([]byte("workers: -1\ngcPeriod: 1ns\nreleaseGrace: \"-5m\"\n"))
	f.Add([]byte("a: &a [*a, *a]\nb: [*a, *a]\n"))
	f.Add([]byte("{\"clusterID\": {\"nested\": 1}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "controller.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		o := Defaults()
		if err := o.LoadFile(p); err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		_ = o.Validate()
	})
}
