// Package imagebuild builds container images without a container engine:
// one layer made from files on this machine, an OCI image config, written as
// an OCI image layout tarball (oci-layout, index.json, blobs/) that
// `ctr images import` and registry tools such as skopeo and crane read.
//
// The build is reproducible: the same files and Spec give the same bytes and
// so the same digest. Every entry has a fixed owner (0:0), a fixed mtime
// (Spec.Created), and entries come in path order; nothing about the machine
// or the time of the build goes in.
//
// It is release tooling (hack/image, `make image`); the binaries that go into
// the image never import it.
package imagebuild

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// Entry is one path in the image's filesystem: a regular file copied from
// Source, a symbolic link to Link, or (neither set) a directory.
type Entry struct {
	// Path is the absolute path in the image, e.g. /usr/bin/kuryrctl.
	Path string
	// Source is the file on this machine whose content the entry gets.
	Source string
	// Link is the target of a symbolic link.
	Link string
	// Mode is the permission bits (and fs.ModeSticky). A file must give
	// one; a directory without one gets 0755; a link always has 0777.
	Mode fs.FileMode
}

// Spec says what the image holds and how it runs.
type Spec struct {
	// Ref names the image, e.g. kuryr-dpdk/kuryr-dpdk:dev. It goes into the
	// layout's index.json so that an import names the image by it.
	Ref string
	// Entries are the image's files, links and directories. Parent
	// directories that are not listed are added with mode 0755.
	Entries    []Entry
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	// User is the image's default user; empty means root.
	User   string
	Labels map[string]string
	// Created is the image's creation time and every file's mtime. The zero
	// value means the Unix epoch, so that builds do not depend on the clock.
	Created time.Time
	// OS and Architecture of the image; empty means this program's GOOS and
	// GOARCH (the binaries are built for the same).
	OS, Architecture string
}

// Reference is a validated image name.
type Reference struct {
	// Full is the fully qualified name containerd and the kubelet use, e.g.
	// docker.io/kuryr-dpdk/kuryr-dpdk:dev.
	Full string
	// Tag is the tag alone, e.g. dev.
	Tag string
}

// ParseReference validates ref (a name with a tag, no digest) and returns
// its fully qualified form, the form the kubelet asks the runtime for.
func ParseReference(ref string) (Reference, error) {
	if !strings.Contains(path.Base(ref), ":") {
		return Reference{}, fmt.Errorf("image name %q: a tag is required (e.g. %s:dev)", ref, ref)
	}
	t, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return Reference{}, fmt.Errorf("image name %q: %w", ref, err)
	}
	reg := t.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io" // containerd's spelling of Docker Hub
	}
	return Reference{Full: reg + "/" + t.RepositoryStr() + ":" + t.TagStr(), Tag: t.TagStr()}, nil
}

// normalize checks the entries, fills in parent directories and default
// modes, and sorts them by path.
func (s Spec) normalize() ([]Entry, error) {
	byPath := map[string]Entry{}
	var errs []error
	for i, e := range s.Entries {
		p := path.Clean(e.Path)
		if !path.IsAbs(e.Path) || p == "/" {
			errs = append(errs, fmt.Errorf("entries[%d].path %q: must be an absolute path below /", i, e.Path))
			continue
		}
		if e.Source != "" && e.Link != "" {
			errs = append(errs, fmt.Errorf("entries[%d] %s: both source and link set", i, p))
			continue
		}
		if e.Source != "" && e.Mode == 0 {
			errs = append(errs, fmt.Errorf("entries[%d] %s: a file needs a mode", i, p))
			continue
		}
		if _, dup := byPath[p]; dup {
			errs = append(errs, fmt.Errorf("entries[%d] %s: listed twice", i, p))
			continue
		}
		e.Path = p
		switch {
		case e.Link != "":
			e.Mode = 0o777
		case e.Source == "" && e.Mode == 0:
			e.Mode = 0o755
		}
		byPath[p] = e
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for p, e := range byPath {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			parent, ok := byPath[d]
			if !ok {
				byPath[d] = Entry{Path: d, Mode: 0o755}
				continue
			}
			if parent.Source != "" || parent.Link != "" {
				return nil, fmt.Errorf("%s: parent %s is not a directory", e.Path, d)
			}
		}
	}
	out := make([]Entry, 0, len(byPath))
	for _, e := range byPath {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (s Spec) created() time.Time {
	if s.Created.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return s.Created.UTC().Truncate(time.Second)
}

func (s Spec) platform() (osName, arch string) {
	osName, arch = s.OS, s.Architecture
	if osName == "" {
		osName = runtime.GOOS
	}
	if arch == "" {
		arch = runtime.GOARCH
	}
	return osName, arch
}
