package imagebuild

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// writeLayer writes the entries (normalized: sorted, parents first) as an
// uncompressed layer tar to w. Owner, group and mtime are fixed; the content
// of a file is read from its Source.
func writeLayer(w io.Writer, entries []Entry, mtime time.Time) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.Path, "/"),
			Mode:    tarMode(e.Mode),
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		switch {
		case e.Link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Link
		case e.Source != "":
			h.Typeflag = tar.TypeReg
		default:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		}
		if h.Typeflag != tar.TypeReg {
			if err := tw.WriteHeader(h); err != nil {
				return fmt.Errorf("layer entry %s: %w", e.Path, err)
			}
			continue
		}
		if err := copyFile(tw, h, e.Source); err != nil {
			return fmt.Errorf("layer entry %s: %w", e.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	return nil
}

func copyFile(tw *tar.Writer, h *tar.Header, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	h.Size = st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if n != h.Size {
		return fmt.Errorf("%s changed size while being read (%d, then %d bytes)", src, h.Size, n)
	}
	return nil
}

// tarMode is the tar header's mode: permission bits plus the set-user-ID,
// set-group-ID and sticky bits in their Unix positions.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
