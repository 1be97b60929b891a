package qemu

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// CPIOFile is one entry of an initramfs archive.
type CPIOFile struct {
	// Name is the path inside the guest, without a leading slash.
	Name string
	// Mode holds the permission bits and fs.ModeDir or fs.ModeSymlink; a
	// regular file has neither.
	Mode fs.FileMode
	// Data is a regular file's content.
	Data []byte
	// Link is a symlink's target.
	Link string
}

// WriteCPIO writes files as an uncompressed newc ("070701") archive, the
// format the kernel unpacks into its initramfs. Missing parent directories
// are added (mode 0755). The kernel accepts several archives concatenated, so
// this one can follow the guest's base initramfs to add files per run.
func WriteCPIO(w io.Writer, files []CPIOFile) error {
	byName := map[string]CPIOFile{}
	for _, f := range files {
		name := strings.Trim(path.Clean("/"+f.Name), "/")
		if name == "" {
			return fmt.Errorf("cpio entry %q: empty name", f.Name)
		}
		f.Name = name
		byName[name] = f
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, ok := byName[d]; !ok {
				byName[d] = CPIOFile{Name: d, Mode: fs.ModeDir | 0o755}
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names) // parents before children
	cw := &countWriter{w: w}
	for i, n := range names {
		f := byName[n]
		var mode uint32
		var data []byte
		switch {
		case f.Mode&fs.ModeDir != 0:
			mode = 0o040000
		case f.Mode&fs.ModeSymlink != 0:
			mode, data = 0o120000, []byte(f.Link)
		case f.Mode.Type() == 0:
			mode, data = 0o100000, f.Data
		default:
			return fmt.Errorf("cpio entry %s: unsupported mode %v", n, f.Mode)
		}
		mode |= uint32(f.Mode.Perm())
		nlink := 1
		if f.Mode&fs.ModeDir != 0 {
			nlink = 2
		}
		if err := writeEntry(cw, uint32(i+1), mode, nlink, n, data); err != nil {
			return err
		}
	}
	if err := writeEntry(cw, 0, 0, 1, "TRAILER!!!", nil); err != nil {
		return err
	}
	// Pad to 512 bytes, as cpio(1) does, so that another archive can follow.
	if pad := (512 - cw.n%512) % 512; pad > 0 {
		if _, err := cw.Write(make([]byte, pad)); err != nil {
			return fmt.Errorf("cpio padding: %w", err)
		}
	}
	return nil
}

func writeEntry(w *countWriter, ino, mode uint32, nlink int, name string, data []byte) error {
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	if _, err := io.WriteString(w, hdr+name+"\x00"); err != nil {
		return fmt.Errorf("cpio entry %s: %w", name, err)
	}
	if err := w.align4(); err != nil {
		return fmt.Errorf("cpio entry %s: %w", name, err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("cpio entry %s: %w", name, err)
	}
	if err := w.align4(); err != nil {
		return fmt.Errorf("cpio entry %s: %w", name, err)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) align4() error {
	if pad := (4 - c.n%4) % 4; pad > 0 {
		_, err := c.Write(make([]byte, pad))
		return err
	}
	return nil
}

// HostFile reads the host file hostPath into a CPIOFile named name (for
// instance a static kuryr-daemon binary for the extra initramfs), keeping
// its permission bits.
func HostFile(name, hostPath string) (CPIOFile, error) {
	st, err := os.Stat(hostPath)
	if err != nil {
		return CPIOFile{}, fmt.Errorf("cpio entry %s: %w", name, err)
	}
	b, err := os.ReadFile(hostPath)
	if err != nil {
		return CPIOFile{}, fmt.Errorf("cpio entry %s: %w", name, err)
	}
	return CPIOFile{Name: name, Mode: st.Mode().Perm(), Data: b}, nil
}

// WriteCPIOFile writes files as a newc archive to path (see WriteCPIO).
func WriteCPIOFile(path string, files []CPIOFile) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write initramfs %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	if err := WriteCPIO(w, files); err != nil {
		f.Close()
		return fmt.Errorf("write initramfs %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write initramfs %s: %w", path, err)
	}
	return f.Close()
}
