// Package pcisim simulates the kernel's PCI sysfs under a root directory, so
// that the production internal/pci code runs unchanged against it: hot-plugged
// virtio-net devices with their netdevs, PCI drivers as directories with
// bind/unbind/new_id/remove_id files, driver_override, drivers_probe and IOMMU
// groups, laid out as on a real guest (/sys/devices/pci0000:00/ADDR, with
// /sys/bus/pci/devices/ADDR and /sys/class/net/IFNAME as relative symlinks).
//
// The active part watches the writable files with inotify (IN_CLOSE_WRITE)
// and does what the kernel does when they are written (the files every
// device shares, drivers_probe and the drivers' bind and unbind, are named
// pipes, so that writers at once lose no write: shared.go): an unbind removes the
// driver link and the virtio netdev; driver_override plus drivers_probe (or a
// driver's bind file) binds the device to a loaded driver; a rebind to
// virtio-pci brings the netdev back. It reacts within milliseconds, but after
// the write returns (the kernel acts before write(2) returns): callers must
// poll for the result, which internal/pci does.
//
// What it does not emulate: write errors (the kernel fails a write of an
// unbound address to unbind with ENODEV; here the write succeeds and nothing
// happens), the /dev/vfio/* nodes, a working /dev/uioN (the uio/uioN
// directory uio_pci_generic makes is there; WithUIODevNodes adds a character
// device node that stands in for /dev/uioN, with no driver behind it), and
// PCI bridges (every device sits directly under its host bridge).
package pcisim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"
)

// Driver names the simulator knows how to behave as.
const (
	DriverVirtioPCI = "virtio-pci"
	DriverUIO       = "uio_pci_generic"
	DriverVFIO      = "vfio-pci"
)

// PCI IDs used for simulated devices.
const (
	VendorVirtio          = 0x1af4
	DeviceVirtioNetLegacy = 0x1000
	DeviceVirtioNetModern = 0x1041
)

var addrRE = regexp.MustCompile(`^([0-9a-f]{4}):([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$`)

// NetdevEvent tells a hook that a device's kernel netdev appeared (bound to
// virtio-pci) or vanished (unbound or removed).
type NetdevEvent struct {
	Addr     string
	IfName   string
	MAC      string
	Appeared bool
}

// Option configures a Sim.
type Option func(*Sim)

// WithDrivers sets the PCI drivers that are "loaded" at start (default:
// virtio-pci, uio_pci_generic and vfio-pci). Leave one out to simulate a
// module that was never loaded.
func WithDrivers(names ...string) Option {
	return func(s *Sim) { s.initialDrivers = append([]string(nil), names...) }
}

// WithIOMMU gives the simulated VM a virtual IOMMU: /sys/kernel/iommu_groups
// is populated and every device gets its own group and iommu_group link, and
// virtio devices report VIRTIO_F_ACCESS_PLATFORM (iommu_platform=on).
func WithIOMMU() Option { return func(s *Sim) { s.iommu = true } }

// WithNoIOMMUMode turns on vfio's enable_unsafe_noiommu_mode
// (/sys/module/vfio/parameters): vfio-pci then takes devices in no IOMMU
// group, as a kernel built with CONFIG_VFIO_NOIOMMU does.
func WithNoIOMMUMode() Option { return func(s *Sim) { s.noIOMMU = true } }

// WithProbeFailure makes the driver's probe refuse every device, as a
// driver does that fails to initialise one ("probe failed with error -22"):
// the device stays unbound.
func WithProbeFailure(driver string) Option {
	return func(s *Sim) { s.failProbe = append(s.failProbe, driver) }
}

// UIODevMajor is the character device major of the nodes WithUIODevNodes
// makes: 240, the first of the majors LANANA reserves for local use, which
// no driver here claims. Opening such a node fails (ENXIO); it is there to
// be seen, handed to a container and refused by a devices cgroup.
const UIODevMajor = 240

// WithUIODevNodes makes, while a device is bound to uio_pci_generic, the
// character device node root/dev/uioN (major UIODevMajor, minor N) that
// stands in for the kernel's /dev/uioN, and removes it on unbind. Making
// a device node needs CAP_MKNOD (root); a failure is recorded (Errors).
func WithUIODevNodes() Option { return func(s *Sim) { s.uioNodes = true } }

// WithNetdevHook calls hook, in the simulator's event order, each time a
// netdev appears or vanishes. The hook must not call the Sim's methods. An
// error it returns is recorded (see Errors).
func WithNetdevHook(hook func(NetdevEvent) error) Option {
	return func(s *Sim) { s.hook = hook }
}

// Sim is a simulated PCI bus under a root directory.
type Sim struct {
	root           string
	initialDrivers []string
	iommu          bool
	hook           func(NetdevEvent) error
	failProbe      []string
	noIOMMU        bool
	uioNodes       bool

	mu        sync.Mutex
	devices   map[string]*device
	drivers   map[string]*driver
	order     []string // drivers in load order, as the kernel matches them
	watches   map[int32]string
	virtioIDs map[int]bool
	nextIndex int
	nextUIO   int
	nextGroup int
	errs      []error
	timers    []*time.Timer
	closed    bool

	// shared are the pipes every device shares (shared.go).
	shared []*sharedFile

	ino       *inotify
	closeOnce sync.Once
	runDone   chan struct{}
	running   bool
}

type device struct {
	addr          string
	mac           string
	ifname        string
	vendor, devid uint16
	driver        string
	virtio        int // index of the virtioN child while bound to virtio-pci, else -1
	uio           int // N of uio/uioN while bound to uio_pci_generic, else -1
	group         int // IOMMU group, -1 for none
}

type driver struct {
	name string
	ids  [][2]uint16 // dynamic IDs added through new_id
}

// New lays out an empty PCI bus under root (root/sys/...) with the loaded
// drivers, and prepares the watcher. Call Run to make it react to writes.
func New(root string, opts ...Option) (*Sim, error) {
	s := &Sim{
		root:           root,
		initialDrivers: []string{DriverVirtioPCI, DriverUIO, DriverVFIO},
		devices:        map[string]*device{},
		drivers:        map[string]*driver{},
		watches:        map[int32]string{},
		virtioIDs:      map[int]bool{},
		nextIndex:      2, // 1 is lo
		runDone:        make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	ino, err := newInotify()
	if err != nil {
		return nil, err
	}
	s.ino = ino
	if err := s.layoutBus(); err != nil {
		_ = ino.close()
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.initialDrivers {
		if err := s.loadDriverLocked(d); err != nil {
			_ = ino.close()
			return nil, err
		}
	}
	return s, nil
}

// Start is New followed by Run in a goroutine, for tests: the simulator
// stops when ctx ends or Close is called; an error of Run is recorded
// (Errors).
func Start(ctx context.Context, root string, opts ...Option) (*Sim, error) {
	s, err := New(root, opts...)
	if err != nil {
		return nil, err
	}
	if err := s.markRunning(); err != nil {
		return nil, err
	}
	go func() {
		if err := s.run(ctx); err != nil {
			s.mu.Lock()
			s.recordErr(err)
			s.mu.Unlock()
		}
	}()
	return s, nil
}

// Root is the directory the simulated /sys lives under.
func (s *Sim) Root() string { return s.root }

// Run reacts to writes until ctx ends or Close is called.
func (s *Sim) Run(ctx context.Context) error {
	if err := s.markRunning(); err != nil {
		return err
	}
	return s.run(ctx)
}

func (s *Sim) markRunning() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running || s.closed {
		return errors.New("pcisim: Run called twice or after Close")
	}
	s.running = true
	return nil
}

func (s *Sim) run(ctx context.Context) error {
	defer close(s.runDone)
	stop := context.AfterFunc(ctx, func() { _ = s.closeInotify() })
	defer stop()
	return s.loop()
}

// Close stops the simulator and waits for Run to return. The tree stays.
func (s *Sim) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, t := range s.timers {
		t.Stop()
	}
	running := s.running
	s.closeSharedLocked("*")
	s.mu.Unlock()
	err := s.closeInotify()
	if running {
		<-s.runDone
	}
	return err
}

func (s *Sim) closeInotify() error {
	var err error
	s.closeOnce.Do(func() { err = s.ino.close() })
	return err
}

// Errors returns what went wrong while reacting to writes or running timers
// and hooks (a malformed write, a failed hook).
func (s *Sim) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

func (s *Sim) recordErr(err error) { s.errs = append(s.errs, err) }

// AddVirtioNet hot-plugs a modern virtio-net device (0x1af4:0x1041) with the
// MAC at addr; like the kernel, it probes it at once, so with virtio-pci
// loaded its netdev (named like systemd's enp0s5) appears.
func (s *Sim) AddVirtioNet(addr, mac string) error {
	return s.AddDevice(addr, mac, DeviceVirtioNetModern)
}

// AddDevice hot-plugs a virtio device with the given device ID.
func (s *Sim) AddDevice(addr, mac string, deviceID uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("pcisim: closed")
	}
	return s.addDeviceLocked(addr, mac, deviceID)
}

// AddVirtioNetAfter hot-plugs the device after delay, as a device appears a
// moment after Nova's attach call returns. An error is recorded (Errors).
func (s *Sim) AddVirtioNetAfter(delay time.Duration, addr, mac string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := time.AfterFunc(delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return
		}
		if err := s.addDeviceLocked(addr, mac, DeviceVirtioNetModern); err != nil {
			s.recordErr(err)
		}
	})
	s.timers = append(s.timers, t)
}

// Remove hot-unplugs the device.
func (s *Sim) Remove(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[addr]
	if !ok {
		return fmt.Errorf("pcisim: no device %s", addr)
	}
	if d.driver != "" {
		s.unbindLocked(d)
	}
	delete(s.devices, addr)
	return s.removeDeviceTree(d)
}

// LoadDriver registers a PCI driver, as modprobe does, and binds it to the
// unbound devices it matches.
func (s *Sim) LoadDriver(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadDriverLocked(name); err != nil {
		return err
	}
	s.attachDriverLocked(name)
	return nil
}

// UnloadDriver unbinds the driver's devices and unregisters it, as rmmod does.
func (s *Sim) UnloadDriver(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.drivers[name]; !ok {
		return fmt.Errorf("pcisim: driver %s not loaded", name)
	}
	for _, d := range s.sortedDevices() {
		if d.driver == name {
			s.unbindLocked(d)
		}
	}
	delete(s.drivers, name)
	s.closeSharedLocked(name)
	for i, n := range s.order {
		if n == name {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	return os.RemoveAll(s.sys("bus", "pci", "drivers", name))
}

// Driver is the driver the device is bound to in the simulator's state.
func (s *Sim) Driver(addr string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[addr]; ok {
		return d.driver
	}
	return ""
}

// Netdev is the name of the device's netdev, "" while it has none.
func (s *Sim) Netdev(addr string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[addr]; ok && d.virtio >= 0 {
		return d.ifname
	}
	return ""
}

func (s *Sim) sortedDevices() []*device {
	out := make([]*device, 0, len(s.devices))
	for _, d := range s.devices {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].addr < out[j].addr })
	return out
}

func (s *Sim) sys(elem ...string) string {
	return filepath.Join(append([]string{s.root, "sys"}, elem...)...)
}
