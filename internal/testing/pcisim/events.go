package pcisim

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// inotify is a non-blocking inotify descriptor wrapped in an *os.File, so a
// blocked Read returns when the file is closed.
type inotify struct {
	fd int
	f  *os.File
}

func newInotify() (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pcisim: inotify_init1: %w", err)
	}
	return &inotify{fd: fd, f: os.NewFile(uintptr(fd), "inotify")}, nil
}

// watch adds an IN_CLOSE_WRITE watch on dir and records which driver it
// belongs to ("" for /sys/bus/pci itself).
func (in *inotify) watch(dir string, watches map[int32]string, driver string) error {
	wd, err := unix.InotifyAddWatch(in.fd, dir, unix.IN_CLOSE_WRITE)
	if err != nil {
		return fmt.Errorf("pcisim: watch %s: %w", dir, err)
	}
	watches[int32(wd)] = driver
	return nil
}

func (in *inotify) close() error { return in.f.Close() }

// loop reads inotify events and handles them in order until the descriptor
// is closed.
func (s *Sim) loop() error {
	buf := make([]byte, 64*1024)
	for {
		n, err := s.ino.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("pcisim: read inotify: %w", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			name := strings.TrimRight(string(nameBytes), "\x00")
			off += unix.SizeofInotifyEvent + int(ev.Len)
			s.handle(ev.Wd, ev.Mask, name)
		}
		s.drainShared()
	}
}

func (s *Sim) handle(wd int32, mask uint32, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mask&unix.IN_IGNORED != 0 {
		delete(s.watches, wd)
		return
	}
	if mask&unix.IN_Q_OVERFLOW != 0 {
		s.recordErr(errors.New("pcisim: inotify queue overflow, writes were lost"))
		return
	}
	if mask&unix.IN_CLOSE_WRITE == 0 || s.closed {
		return
	}
	drvName, ok := s.watches[wd]
	if !ok {
		return
	}
	if sf := s.sharedFor(drvName, name); sf != nil {
		s.actShared(sf, false)
		return
	}
	var path string
	if drvName == "" {
		path = s.sys("bus", "pci", name)
	} else {
		path = s.sys("bus", "pci", "drivers", drvName, name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) { // a driver unloaded meanwhile
			s.recordErr(fmt.Errorf("pcisim: read %s: %w", path, err))
		}
		return
	}
	content := string(b)
	if strings.TrimSpace(content) == "" {
		return
	}
	switch {
	case drvName == "" && name == "drivers_probe":
		for _, addr := range s.addrs(path, content) {
			if d, ok := s.devices[addr]; ok {
				s.probeLocked(d)
			}
		}
	case drvName == "":
		// rescan, drivers_autoprobe: nothing to do for a simulated bus
	default:
		s.driverWrite(drvName, name, path, content)
	}
}

func (s *Sim) driverWrite(drvName, file, path, content string) {
	drv, ok := s.drivers[drvName]
	if !ok {
		return
	}
	switch file {
	case "bind":
		for _, addr := range s.addrs(path, content) {
			if d, ok := s.devices[addr]; ok && d.driver == "" && s.matches(d, drv) && s.probeOK(d, drv) {
				s.bindLocked(d, drv)
			}
		}
	case "unbind":
		for _, addr := range s.addrs(path, content) {
			if d, ok := s.devices[addr]; ok && d.driver == drvName {
				s.unbindLocked(d)
			}
		}
	case "new_id":
		id, err := parseID(content)
		if err != nil {
			s.recordErr(fmt.Errorf("pcisim: %s: %w", path, err))
			return
		}
		drv.ids = append(drv.ids, id)
		s.attachDriverLocked(drvName)
	case "remove_id":
		id, err := parseID(content)
		if err != nil {
			s.recordErr(fmt.Errorf("pcisim: %s: %w", path, err))
			return
		}
		for i, have := range drv.ids {
			if have == id {
				drv.ids = append(drv.ids[:i], drv.ids[i+1:]...)
				break
			}
		}
	}
}

// addrs parses the PCI addresses written to a bind-like file; anything else
// is recorded as an error, as the kernel would fail the write.
func (s *Sim) addrs(path, content string) []string {
	v := strings.TrimSpace(content)
	if !addrRE.MatchString(v) {
		s.recordErr(fmt.Errorf("pcisim: %s: not a PCI address: %q", path, v))
		return nil
	}
	return []string{v}
}

// parseID parses new_id/remove_id input: "vendor device" in hex.
func parseID(content string) ([2]uint16, error) {
	f := strings.Fields(content)
	if len(f) < 2 {
		return [2]uint16{}, fmt.Errorf("want \"vendor device\", got %q", content)
	}
	var id [2]uint16
	for i := range 2 {
		n, err := strconv.ParseUint(strings.TrimPrefix(f[i], "0x"), 16, 16)
		if err != nil {
			return [2]uint16{}, fmt.Errorf("bad ID %q: %w", f[i], err)
		}
		id[i] = uint16(n)
	}
	return id, nil
}
