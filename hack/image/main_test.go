package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFlagsMakeTheSpec(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	var o options
	for flag, vals := range map[*list][]string{
		&o.files:  {"bin/x:/usr/bin/x:0755"},
		&o.links:  {"/bin/sh:/bin/busybox"},
		&o.dirs:   {"/tmp:1777"},
		&o.labels: {"a=b=c"},
	} {
		for _, v := range vals {
			_ = flag.Set(v)
		}
	}
	o.out, o.ref = "x.tar", "example/x:dev"
	if err := o.cmd.Set(`["/usr/bin/x","help"]`); err != nil {
		t.Fatal(err)
	}
	spec, err := o.spec()
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Entries) != 3 {
		t.Fatalf("entries %+v", spec.Entries)
	}
	f, l, d := spec.Entries[0], spec.Entries[1], spec.Entries[2]
	if f.Source != "bin/x" || f.Path != "/usr/bin/x" || f.Mode != 0o755 {
		t.Errorf("-file gave %+v", f)
	}
	if l.Path != "/bin/sh" || l.Link != "/bin/busybox" {
		t.Errorf("-link gave %+v", l)
	}
	if d.Path != "/tmp" || d.Mode != 0o777|fs.ModeSticky {
		t.Errorf("-dir gave %+v", d)
	}
	if spec.Labels["a"] != "b=c" || strings.Join(spec.Cmd, " ") != "/usr/bin/x help" {
		t.Errorf("labels %v cmd %v", spec.Labels, spec.Cmd)
	}
	if !spec.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("created %s, want SOURCE_DATE_EPOCH", spec.Created)
	}
}

func TestBadFlagsAreNamed(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"-file", "a:b", "-dir", "/tmp:9", "-label", "nokey"}, &bytes.Buffer{}, &stderr)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{"-o: required", "-name: required", `-file "a:b"`, `-dir "/tmp:9"`, `-label "nokey"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestRunWritesTheTarballAndPrintsTheDigest(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "x")
	if err := os.WriteFile(src, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "images", "x.oci.tar")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-o", out, "-name", "example/x:dev", "-file", src + ":/usr/bin/x:0755"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	fields := strings.Fields(stdout.String())
	if len(fields) != 3 || !strings.HasPrefix(fields[0], "sha256:") || fields[1] != "docker.io/example/x:dev" || fields[2] != out {
		t.Errorf("printed %q", stdout.String())
	}
	ents, _ := os.ReadDir(filepath.Dir(out))
	if len(ents) != 1 || ents[0].Name() != "x.oci.tar" {
		t.Errorf("images dir holds %v (a temporary file left?)", ents)
	}
}

// -preset kuryr gives imagebuild.KuryrSpec (the binaries of -bin in
// /usr/bin, the version label); flags add to it or override its command.
func TestPresetKuryrIsTheSharedSpecWithFlagsOnTop(t *testing.T) {
	o := options{preset: "kuryr", binDir: "bin", version: "v1.2.3", out: "x.tar", ref: "example/kuryr:dev"}
	_ = o.labels.Set("extra=1")
	if err := o.cmd.Set(`["/usr/bin/kuryr-daemon"]`); err != nil {
		t.Fatal(err)
	}
	spec, err := o.spec()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range spec.Entries {
		files[e.Path] = e.Source
	}
	for _, b := range []string{"kuryr-controller", "kuryr-daemon", "kuryr-cni", "kuryrctl"} {
		if files["/usr/bin/"+b] != filepath.Join("bin", b) {
			t.Errorf("/usr/bin/%s from %q, want bin/%s", b, files["/usr/bin/"+b], b)
		}
	}
	if spec.Ref != "example/kuryr:dev" || spec.Labels["org.opencontainers.image.version"] != "v1.2.3" || spec.Labels["extra"] != "1" {
		t.Errorf("ref %q labels %v", spec.Ref, spec.Labels)
	}
	if strings.Join(spec.Cmd, " ") != "/usr/bin/kuryr-daemon" || spec.WorkingDir != "/" {
		t.Errorf("cmd %v workdir %q, want the flag's cmd and /", spec.Cmd, spec.WorkingDir)
	}
}

func TestBadPresetsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		o    options
		want string
	}{
		{options{preset: "nginx"}, `-preset "nginx": want kuryr or demo`},
		{options{preset: "kuryr"}, "-preset kuryr: -bin is required"},
		{options{binDir: "bin"}, "-bin and -version go with -preset kuryr"},
	} {
		tc.o.out, tc.o.ref = "x.tar", "example/x:dev"
		if _, err := tc.o.spec(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
		}
	}
}
