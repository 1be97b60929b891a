package qemu

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

type cpioEntry struct {
	mode uint32
	data string
}

// readNewc parses a newc archive, independently of WriteCPIO.
func readNewc(t *testing.T, b []byte) map[string]cpioEntry {
	t.Helper()
	out := map[string]cpioEntry{}
	off := 0
	field := func(i int) int {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("offset %d: field %d: %v", off, i, err)
		}
		return int(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("offset %d: bad magic %q", off, b[off:off+6])
		}
		mode, size, nameSize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+nameSize-1])
		dataOff := align(off + 110 + nameSize)
		if name == "TRAILER!!!" {
			if end := align(dataOff + size); len(b)%512 != 0 || len(b) < end {
				t.Fatalf("archive of %d bytes is not padded to 512 after the trailer at %d", len(b), end)
			}
			return out
		}
		out[name] = cpioEntry{mode: uint32(mode), data: string(b[dataOff : dataOff+size])}
		off = align(dataOff + size)
	}
}

func TestWriteCPIO(t *testing.T) {
	var buf bytes.Buffer
	err := WriteCPIO(&buf, []CPIOFile{
		{Name: "/usr/local/bin/kuryr-daemon", Mode: 0o755, Data: []byte("ELF...")},
		{Name: "etc/kuryr/init.d/10-daemon", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Name: "etc/kuryr/link", Mode: fs.ModeSymlink | 0o777, Link: "../hostname"},
		{Name: "var/empty", Mode: fs.ModeDir | 0o700},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := readNewc(t, buf.Bytes())
	want := map[string]cpioEntry{
		"usr":                        {mode: 0o40755},
		"usr/local":                  {mode: 0o40755},
		"usr/local/bin":              {mode: 0o40755},
		"usr/local/bin/kuryr-daemon": {mode: 0o100755, data: "ELF..."},
		"etc":                        {mode: 0o40755},
		"etc/kuryr":                  {mode: 0o40755},
		"etc/kuryr/init.d":           {mode: 0o40755},
		"etc/kuryr/init.d/10-daemon": {mode: 0o100755, data: "#!/bin/sh\n"},
		"etc/kuryr/link":             {mode: 0o120777, data: "../hostname"},
		"var":                        {mode: 0o40755},
		"var/empty":                  {mode: 0o40700},
	}
	if len(got) != len(want) {
		t.Errorf("entries: got %v, want %v", got, want)
	}
	for n, w := range want {
		if g, ok := got[n]; !ok || g != w {
			t.Errorf("entry %s: got %+v (present %v), want %+v", n, g, ok, w)
		}
	}

	// GNU cpio, when there, reads it the same way.
	if _, err := exec.LookPath("cpio"); err == nil {
		cmd := exec.Command("cpio", "-t", "--quiet")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("cpio -t: %v", err)
		}
		if n := len(strings.Fields(string(out))); n != len(want) {
			t.Errorf("cpio -t lists %d entries, want %d:\n%s", n, len(want), out)
		}
	}
}

func TestWriteCPIOErrors(t *testing.T) {
	for _, f := range []CPIOFile{{Name: "/"}, {Name: "dev/null", Mode: fs.ModeDevice | 0o666}} {
		if err := WriteCPIO(&bytes.Buffer{}, []CPIOFile{f}); err == nil {
			t.Errorf("WriteCPIO(%+v) succeeded", f)
		}
	}
}

func TestHostFileAndWriteCPIOFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bin")
	if err := os.WriteFile(src, []byte("binary"), 0o750); err != nil {
		t.Fatal(err)
	}
	f, err := HostFile("usr/bin/x", src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "extra.cpio")
	if err := WriteCPIOFile(dst, []CPIOFile{f}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if e := readNewc(t, b)["usr/bin/x"]; e.mode != 0o100750 || e.data != "binary" {
		t.Fatalf("usr/bin/x: got %+v", e)
	}
	if _, err := HostFile("x", filepath.Join(dir, "missing")); err == nil {
		t.Fatal("HostFile of a missing file succeeded")
	}
}
