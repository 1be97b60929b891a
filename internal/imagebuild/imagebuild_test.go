package imagebuild

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testSpec is an image of two "binaries" (files in dir), a link, and /tmp.
func testSpec(t *testing.T, dir string) Spec {
	t.Helper()
	for name, content := range map[string]string{"tool-a": "#!binary a\n", "tool-b": "#!binary b\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return Spec{
		Ref: "example/tools:dev",
		Entries: []Entry{
			{Path: "/usr/bin/tool-b", Source: filepath.Join(dir, "tool-b"), Mode: 0o755},
			{Path: "/usr/bin/tool-a", Source: filepath.Join(dir, "tool-a"), Mode: 0o755},
			{Path: "/bin/a", Link: "/usr/bin/tool-a"},
			{Path: "/tmp", Mode: 0o777 | fs.ModeSticky},
		},
		Cmd:    []string{"/usr/bin/tool-a", "help"},
		Env:    []string{"PATH=/usr/bin:/bin"},
		Labels: map[string]string{"org.opencontainers.image.version": "v1.2.3"},
	}
}

func build(t *testing.T, spec Spec) ([]byte, Result) {
	t.Helper()
	var buf bytes.Buffer
	res, err := Build(spec, &buf, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), res
}

func TestSameInputsGiveTheSameDigest(t *testing.T) {
	dir := t.TempDir()
	spec := testSpec(t, dir)
	first, r1 := build(t, spec)

	// The sources' own mtimes and the clock are not inputs.
	later := time.Now().Add(time.Hour)
	for _, e := range spec.Entries {
		if e.Source != "" {
			if err := os.Chtimes(e.Source, later, later); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(1100 * time.Millisecond)
	second, r2 := build(t, spec)
	if r1.Digest != r2.Digest || !bytes.Equal(first, second) {
		t.Fatalf("two builds of the same inputs differ: %s (%d bytes) and %s (%d bytes)", r1.Digest, len(first), r2.Digest, len(second))
	}
	if !strings.HasPrefix(r1.Digest.String(), "sha256:") || len(r1.Digest.Hex) != 64 {
		t.Errorf("digest %q", r1.Digest)
	}

	// A changed input is a changed image.
	if err := os.WriteFile(filepath.Join(dir, "tool-b"), []byte("#!binary B\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, r3 := build(t, spec)
	if r3.Digest == r1.Digest {
		t.Errorf("a changed file kept the digest %s", r1.Digest)
	}
	spec.Labels = map[string]string{"org.opencontainers.image.version": "v1.2.4"}
	_, r4 := build(t, spec)
	if r4.Digest == r3.Digest {
		t.Errorf("a changed label kept the digest %s", r3.Digest)
	}
}

// untar extracts the layout tarball into a directory and checks its entries
// are what a reproducible archive holds: owner 0, mtime the epoch.
func untar(t *testing.T, b []byte) string {
	t.Helper()
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("layout entry %s: uid %d gid %d mtime %s", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type layerEntry struct {
	typ     byte
	mode    int64
	content string
	link    string
}

func TestLayoutReadsBackWithTheFiles(t *testing.T) {
	spec := testSpec(t, t.TempDir())
	b, res := build(t, spec)
	if res.Name != "docker.io/example/tools:dev" {
		t.Errorf("name %q", res.Name)
	}
	dir := untar(t, b)
	if got, _ := os.ReadFile(filepath.Join(dir, "oci-layout")); string(got) != ociLayoutFile {
		t.Errorf("oci-layout: %q", got)
	}

	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json has %d manifests", len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.Digest != res.Digest || d.MediaType != types.OCIManifestSchema1 {
		t.Errorf("index.json entry %s %s, want %s", d.MediaType, d.Digest, res.Digest)
	}
	if d.Annotations[AnnotationRefName] != "dev" || d.Annotations[AnnotationContainerdName] != "docker.io/example/tools:dev" {
		t.Errorf("index.json annotations %v", d.Annotations)
	}

	img, err := lp.Image(res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cf.Created.Equal(time.Unix(0, 0)) || cf.OS == "" || cf.Architecture == "" {
		t.Errorf("config created %s os %q arch %q", cf.Created, cf.OS, cf.Architecture)
	}
	if strings.Join(cf.Config.Cmd, " ") != "/usr/bin/tool-a help" || cf.Config.Labels["org.opencontainers.image.version"] != "v1.2.3" {
		t.Errorf("config %+v", cf.Config)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	if mt, _ := layers[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %s", mt)
	}

	got := readLayer(t, layers[0])
	want := []string{"bin/", "bin/a", "tmp/", "usr/", "usr/bin/", "usr/bin/tool-a", "usr/bin/tool-b"}
	names := got.order
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("layer entries (in order) %v, want %v", names, want)
	}
	checks := map[string]layerEntry{
		"usr/bin/tool-a": {typ: tar.TypeReg, mode: 0o755, content: "#!binary a\n"},
		"usr/bin/tool-b": {typ: tar.TypeReg, mode: 0o755, content: "#!binary b\n"},
		"bin/a":          {typ: tar.TypeSymlink, mode: 0o777, link: "/usr/bin/tool-a"},
		"tmp/":           {typ: tar.TypeDir, mode: 0o1777},
		"usr/":           {typ: tar.TypeDir, mode: 0o755},
	}
	for name, w := range checks {
		if g := got.entries[name]; g != w {
			t.Errorf("layer %s: %+v, want %+v", name, g, w)
		}
	}
}

type layerContents struct {
	order   []string
	entries map[string]layerEntry
}

func readLayer(t *testing.T, l v1.Layer) layerContents {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := layerContents{entries: map[string]layerEntry{}}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("layer entry %s: uid %d gid %d mtime %s", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		body, _ := io.ReadAll(tr)
		out.order = append(out.order, h.Name)
		out.entries[h.Name] = layerEntry{typ: h.Typeflag, mode: h.Mode, content: string(body), link: h.Linkname}
	}
}

func TestSpecErrors(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		spec Spec
		want string
	}{
		"no tag":        {Spec{Ref: "example/tools"}, "a tag is required"},
		"bad name":      {Spec{Ref: "Example/Tools:dev"}, "image name"},
		"relative path": {Spec{Ref: "x:dev", Entries: []Entry{{Path: "usr/bin"}}}, "entries[0].path"},
		"file without mode": {Spec{Ref: "x:dev", Entries: []Entry{{Path: "/a", Source: filepath.Join(dir, "a")}}},
			"needs a mode"},
		"twice": {Spec{Ref: "x:dev", Entries: []Entry{{Path: "/a"}, {Path: "/a/"}}}, "listed twice"},
		"file as parent": {Spec{Ref: "x:dev", Entries: []Entry{{Path: "/a", Link: "b"}, {Path: "/a/c"}}},
			"not a directory"},
		"missing source": {Spec{Ref: "x:dev", Entries: []Entry{{Path: "/a", Source: filepath.Join(dir, "none"), Mode: 0o644}}},
			"no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Build(tc.spec, io.Discard, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
