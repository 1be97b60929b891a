// Command image builds a container image from files on this machine, without
// a container engine, as an OCI image layout tarball (internal/imagebuild),
// and prints its digest, name and path. `make image` (hack/image.sh) runs it
// for the project's images, defined once in internal/imagebuild (the
// all-in-one builds the same): -preset kuryr (the binaries of -bin) and
// -preset demo. Flags add to a preset, or describe an image of their own.
//
//	go run ./hack/image -preset kuryr -bin bin -version dev -o bin/images/kuryr-dpdk.oci.tar -name kuryr-dpdk/kuryr-dpdk:dev
//	go run ./hack/image -o x.oci.tar -name example/x:1 -file bin/x:/usr/bin/x:0755 -dir /tmp:1777 -cmd '["/usr/bin/x"]'
//
// It lives under hack/ because it is release tooling, not part of the product:
// cmd/ holds what goes into the image.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kuryr-dpdk/kuryr-dpdk/internal/imagebuild"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// jsonArgs is a flag holding a JSON list of strings (an entrypoint or cmd).
type jsonArgs []string

func (a *jsonArgs) String() string { b, _ := json.Marshal([]string(*a)); return string(b) }
func (a *jsonArgs) Set(v string) error {
	if err := json.Unmarshal([]byte(v), (*[]string)(a)); err != nil {
		return fmt.Errorf("want a JSON list of strings: %w", err)
	}
	return nil
}

type options struct {
	preset, binDir, version string
	out, ref, user, workdir string
	files, links, dirs      list
	env, labels             list
	entrypoint, cmd         jsonArgs
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	flags := flag.NewFlagSet("image", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&o.preset, "preset", "", "start from one of the project's images: kuryr (the binaries of -bin) or demo (Debian's busybox-static)")
	flags.StringVar(&o.binDir, "bin", "", "with -preset kuryr: the directory holding "+strings.Join(imagebuild.KuryrBinaries, ", "))
	flags.StringVar(&o.version, "version", "", "with -preset kuryr: the version label")
	flags.StringVar(&o.out, "o", "", "the OCI layout tarball to write (required)")
	flags.StringVar(&o.ref, "name", "", "the image's name with a tag, e.g. kuryr-dpdk/kuryr-dpdk:dev (required)")
	flags.Var(&o.files, "file", "SRC:DST:MODE: a file of this machine at DST in the image, octal mode (repeatable)")
	flags.Var(&o.links, "link", "DST:TARGET: a symbolic link (repeatable)")
	flags.Var(&o.dirs, "dir", "DST:MODE: a directory, octal mode with 1000 for sticky (repeatable)")
	flags.Var(&o.env, "env", "NAME=VALUE in the image's environment (repeatable)")
	flags.Var(&o.labels, "label", "KEY=VALUE image label (repeatable)")
	flags.Var(&o.entrypoint, "entrypoint", `the entrypoint, a JSON list ("[\"/bin/sh\"]")`)
	flags.Var(&o.cmd, "cmd", "the default command, a JSON list")
	flags.StringVar(&o.user, "user", "", "the default user (empty: root)")
	flags.StringVar(&o.workdir, "workdir", "", "the working directory (empty: the preset's, else /)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	spec, err := o.spec()
	if err != nil {
		fmt.Fprintln(stderr, "image:", err)
		return 2
	}
	res, err := write(spec, o.out)
	if err != nil {
		fmt.Fprintln(stderr, "image:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s  %s  %s\n", res.Digest, res.Name, o.out)
	return 0
}

// spec turns the flags into an imagebuild.Spec. The creation time is
// $SOURCE_DATE_EPOCH when set (the reproducible-builds convention), else
// the Unix epoch.
func (o options) spec() (imagebuild.Spec, error) {
	var errs []error
	if o.out == "" {
		errs = append(errs, errors.New("-o: required"))
	}
	if o.ref == "" {
		errs = append(errs, errors.New("-name: required"))
	}
	var spec imagebuild.Spec
	switch o.preset {
	case "":
	case "kuryr":
		if o.binDir == "" {
			errs = append(errs, errors.New("-preset kuryr: -bin is required"))
		}
		spec = imagebuild.KuryrSpec(o.ref, o.binDir, o.version)
	case "demo":
		var err error
		if spec, err = imagebuild.DemoSpec(o.ref); err != nil {
			errs = append(errs, fmt.Errorf("-preset demo: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("-preset %q: want kuryr or demo", o.preset))
	}
	if o.preset != "kuryr" && (o.binDir != "" || o.version != "") {
		errs = append(errs, errors.New("-bin and -version go with -preset kuryr"))
	}
	spec.Ref = o.ref
	if len(o.entrypoint) > 0 {
		spec.Entrypoint = o.entrypoint
	}
	if len(o.cmd) > 0 {
		spec.Cmd = o.cmd
	}
	spec.Env = append(spec.Env, o.env...)
	if o.user != "" {
		spec.User = o.user
	}
	if o.workdir != "" {
		spec.WorkingDir = o.workdir
	}
	if spec.WorkingDir == "" {
		spec.WorkingDir = "/"
	}
	for _, f := range o.files {
		parts := strings.Split(f, ":")
		if len(parts) != 3 {
			errs = append(errs, fmt.Errorf("-file %q: want SRC:DST:MODE", f))
			continue
		}
		mode, err := parseMode(parts[2])
		if err != nil {
			errs = append(errs, fmt.Errorf("-file %q: %w", f, err))
			continue
		}
		spec.Entries = append(spec.Entries, imagebuild.Entry{Path: parts[1], Source: parts[0], Mode: mode})
	}
	for _, l := range o.links {
		dst, target, ok := strings.Cut(l, ":")
		if !ok || target == "" {
			errs = append(errs, fmt.Errorf("-link %q: want DST:TARGET", l))
			continue
		}
		spec.Entries = append(spec.Entries, imagebuild.Entry{Path: dst, Link: target})
	}
	for _, d := range o.dirs {
		dst, m, ok := strings.Cut(d, ":")
		mode, err := parseMode(m)
		if !ok || err != nil {
			errs = append(errs, fmt.Errorf("-dir %q: want DST:MODE (%v)", d, err))
			continue
		}
		spec.Entries = append(spec.Entries, imagebuild.Entry{Path: dst, Mode: mode})
	}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("-label %q: want KEY=VALUE", l))
			continue
		}
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		spec.Labels[k] = v
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err))
		}
		spec.Created = time.Unix(sec, 0)
	}
	return spec, errors.Join(errs...)
}

// parseMode reads an octal mode; 1000 is the sticky bit.
func parseMode(s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o1777 {
		return 0, fmt.Errorf("mode %q: want octal permission bits, 1000 for sticky", s)
	}
	mode := fs.FileMode(n & 0o777)
	if n&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode, nil
}

// write builds the image into a temporary file next to path and renames it
// into place, so that a failed build leaves no half-written tarball.
func write(spec imagebuild.Spec, path string) (imagebuild.Result, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return imagebuild.Result{}, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return imagebuild.Result{}, err
	}
	defer os.Remove(f.Name())
	res, err := imagebuild.Build(spec, f, dir)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", f.Name(), cerr)
	}
	if err != nil {
		return imagebuild.Result{}, err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return imagebuild.Result{}, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return imagebuild.Result{}, err
	}
	return res, nil
}
