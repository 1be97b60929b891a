package pcisim

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// The files every device shares — /sys/bus/pci/drivers_probe and each
// driver's bind and unbind — are named pipes here, not plain files. With
// plain files, writers that write at once (one daemon binding the devices
// of 14 pods) overwrite each other before the simulator reads the file, and
// writes are lost that the kernel, which acts within write(2), never loses.
// Through a pipe each write of an address (far below PIPE_BUF) reaches the
// simulator whole. The simulator holds each pipe open for reading and
// writing, so that a writer's open never blocks; it reads one address at
// each close of a writer (the inotify event) and, after each batch of
// events, whatever inotify merged into one event. That drain also takes a
// write whose writer has not closed the pipe yet, and a close event still
// queued from an earlier write can take a later one: so the order holds
// only between writes whose results the writer waited for. A caller that
// needs one write acted on before its next (an unbind before a probe)
// polls for the result in between, as internal/pci does and the kernel,
// which acts within write(2), never needs. Close puts empty plain files in
// their place: the tree stays, and a late writer writes into nothing, as
// before.

// sharedFile is one of the pipes.
type sharedFile struct {
	path    string
	driver  string // "" for drivers_probe
	name    string // drivers_probe, bind or unbind
	fd      int    // read and write, non-blocking
	pending string // read, not acted on yet
}

// sharedNames are the driver files made as pipes.
var sharedNames = map[string]bool{"bind": true, "unbind": true}

// addrPrefixRE matches a PCI address at the start of what a pipe holds.
var addrPrefixRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]`)

// partialAddrRE matches what may be the start of an address whose rest
// has not been read yet.
var partialAddrRE = regexp.MustCompile(`^[0-9a-f:.]{0,11}$`)

// makeShared makes the pipe at path and opens it.
func (s *Sim) makeShared(path, driver, name string) error {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return fmt.Errorf("pcisim: mkfifo %s: %w", path, err)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pcisim: open %s: %w", path, err)
	}
	s.shared = append(s.shared, &sharedFile{path: path, driver: driver, name: name, fd: fd})
	return nil
}

// sharedFor returns the pipe of a watched file, nil if it is not one.
func (s *Sim) sharedFor(driver, name string) *sharedFile {
	for _, sf := range s.shared {
		if sf.driver == driver && sf.name == name {
			return sf
		}
	}
	return nil
}

// closeSharedLocked replaces the pipes of driver (all of them for "*")
// with empty plain files, where their directory is still there, and
// closes them.
func (s *Sim) closeSharedLocked(driver string) {
	keep := s.shared[:0]
	for _, sf := range s.shared {
		if driver != "*" && sf.driver != driver {
			keep = append(keep, sf)
			continue
		}
		tmp := sf.path + ".pcisim-tmp"
		if err := os.WriteFile(tmp, nil, 0o600); err == nil {
			if err := os.Rename(tmp, sf.path); err != nil {
				_ = os.Remove(tmp)
			}
		}
		_ = unix.Close(sf.fd)
	}
	s.shared = keep
}

// fill reads what sf's pipe holds into sf.pending.
func (s *Sim) fill(sf *sharedFile) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(sf.fd, buf)
		if n > 0 {
			sf.pending += string(buf[:n])
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return
		case err != nil:
			s.recordErr(fmt.Errorf("pcisim: read %s: %w", sf.path, err))
			return
		case n < len(buf):
			return
		}
	}
}

// actShared acts on the next address written to sf (at most one unless
// all): a writer closed it.
func (s *Sim) actShared(sf *sharedFile, all bool) {
	if s.closed {
		return
	}
	s.fill(sf)
	for {
		data := strings.TrimLeft(sf.pending, " \t\n")
		if data == "" || partialAddrRE.MatchString(data) {
			sf.pending = data
			return
		}
		addr := addrPrefixRE.FindString(data)
		if addr == "" {
			s.recordErr(fmt.Errorf("pcisim: %s: not a PCI address: %q", sf.path, strings.TrimSpace(data)))
			sf.pending = ""
			return
		}
		sf.pending = data[len(addr):]
		if sf.driver == "" {
			if d, ok := s.devices[addr]; ok {
				s.probeLocked(d)
			}
		} else {
			s.driverWrite(sf.driver, sf.name, sf.path, addr)
		}
		if !all {
			return
		}
	}
}

// drainShared acts on every address left in the pipes: writes whose
// close events inotify merged.
func (s *Sim) drainShared() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sf := range s.shared {
		s.actShared(sf, true)
	}
}
