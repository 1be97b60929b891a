// Package qemu starts a node VM under QEMU (q35, TCG), talks QMP to it,
// hot-plugs and unplugs virtio-net-pci devices on pcie-root-ports the way
// Nova and libvirt do for an interface attach, and runs shell commands in the
// guest through the guest agent of hack/vm/init.
//
// The guest (kernel and initramfs) is built by hack/vm/build-guest.sh; see
// docs/node-vm.md.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MgmtMAC is the management NIC's MAC when Options.Mgmt gives none.
const MgmtMAC = "52:54:00:12:34:01"

// Options describes the VM to start.
type Options struct {
	// Binary is the QEMU binary; default qemu-system-x86_64.
	Binary string
	// Kernel and Initrd are the guest's kernel and base initramfs.
	Kernel, Initrd string
	// ExtraInitrd are cpio archives appended to Initrd (see WriteCPIO): a
	// cheap way to add files, such as the kuryr binaries, per run.
	ExtraInitrd []string
	// MemoryMiB is the guest memory; default 1024.
	MemoryMiB int
	// CPUs is the number of vCPUs; default 2 (testpmd needs a main and a
	// forwarding lcore).
	CPUs int
	// VIOMMU adds an emulated Intel IOMMU and boots with intel_iommu=on, so
	// that vfio-pci works; hot-plugged NICs then get iommu_platform=on.
	VIOMMU bool
	// RootPorts is the number of pcie-root-ports created for hot-plug;
	// default 4.
	RootPorts int
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string
	// Mgmt, when set, adds a management NIC on QEMU user networking.
	Mgmt *Mgmt
	// BootTimeout bounds the wait for the guest agent; default 90 s.
	BootTimeout time.Duration
}

// Mgmt is the management NIC: QEMU user networking with restrict=on, so the
// guest reaches nothing but the GuestFwd targets on the host. The guest's
// /init gives it 10.0.2.15/24.
type Mgmt struct {
	// MAC defaults to MgmtMAC.
	MAC string
	// GuestFwd forwards TCP connections the guest opens to these addresses.
	GuestFwd []GuestFwd
}

// GuestFwd forwards a guest TCP address (in 10.0.2.0/24, e.g.
// "10.0.2.100:6443") to a host loopback address (e.g. "127.0.0.1:6443").
// Each guest connection runs "busybox nc" on the host.
type GuestFwd struct {
	Guest, Host string
}

// VM is a running QEMU guest.
type VM struct {
	QMP   Monitor
	Agent *Agent

	opts    Options
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error

	mu    sync.Mutex
	ports []string // root port i holds the device ID ports[i], "" when free
	nics  map[string]*NIC
}

// Start boots a VM and returns when its guest agent answers. Close stops it.
func Start(ctx context.Context, opts Options) (*VM, error) {
	if opts.Kernel == "" || opts.Initrd == "" {
		return nil, errors.New("start vm: kernel and initrd are required")
	}
	if opts.Binary == "" {
		opts.Binary = "qemu-system-x86_64"
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = 1024
	}
	if opts.CPUs == 0 {
		opts.CPUs = 2
	}
	if opts.RootPorts == 0 {
		opts.RootPorts = 4
	}
	if opts.BootTimeout == 0 {
		opts.BootTimeout = 90 * time.Second
	}
	// Unix socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "kuryr-vm-")
	if err != nil {
		return nil, fmt.Errorf("start vm: %w", err)
	}
	vm := &VM{opts: opts, dir: dir, exited: make(chan struct{}), ports: make([]string, opts.RootPorts), nics: map[string]*NIC{}}
	ok := false
	defer func() {
		if !ok {
			vm.Close()
		}
	}()

	initrd := opts.Initrd
	if len(opts.ExtraInitrd) > 0 {
		initrd = filepath.Join(dir, "initrd.img")
		if err := concatFiles(initrd, append([]string{opts.Initrd}, opts.ExtraInitrd...)); err != nil {
			return nil, fmt.Errorf("start vm: %w", err)
		}
	}
	args := vm.args(initrd)
	vm.cmd = exec.Command(opts.Binary, args...)
	stderr, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		return nil, fmt.Errorf("start vm: %w", err)
	}
	defer stderr.Close()
	vm.cmd.Stdout, vm.cmd.Stderr = stderr, stderr
	setDeathSignal(vm.cmd) // QEMU must not outlive a killed test binary
	if err := vm.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start vm: %s: %w", opts.Binary, err)
	}
	go func() {
		vm.waitErr = vm.cmd.Wait()
		close(vm.exited)
	}()

	bootCtx, cancel := context.WithTimeout(ctx, opts.BootTimeout)
	defer cancel()
	qmpConn, err := vm.dialRetry(bootCtx, "qmp.sock", func(ctx context.Context, p string) (io.Closer, error) { return DialQMP(ctx, p) })
	if err != nil {
		return nil, err
	}
	vm.QMP = qmpConn.(*QMP)
	agentConn, err := vm.dialRetry(bootCtx, "agent.sock", func(ctx context.Context, p string) (io.Closer, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", p)
	})
	if err != nil {
		return nil, err
	}
	vm.Agent = NewAgent(agentConn.(net.Conn))
	// The first command waits in the socket until the guest's /init opens
	// the port; the process watcher ends it if QEMU dies meanwhile.
	pingCtx, stopPing := context.WithCancel(bootCtx)
	defer stopPing()
	go func() {
		select {
		case <-vm.exited:
			stopPing()
		case <-pingCtx.Done():
		}
	}()
	res, err := vm.Agent.Run(pingCtx, "echo ready")
	if err != nil || res.Stdout != "ready\n" {
		return nil, fmt.Errorf("start vm: guest agent did not answer (%v, %q): %s", err, res.Stdout, vm.diagnostics())
	}
	ok = true
	return vm, nil
}

func (vm *VM) args(initrd string) []string {
	o := vm.opts
	// no_timer_check: under TCG on a loaded host the kernel's check that
	// the timer interrupt arrives through the IO-APIC can fail, and with
	// interrupt remapping (the vIOMMU) that is a panic ("timer doesn't work
	// through Interrupt-remapped IO-APIC").
	// softlockup_panic=1: a guest whose CPUs are stuck in the kernel (seen
	// once under TCG: containerd and ctr soft-locked on both vCPUs, the
	// agent silent for good) panics, with the panic's report on the
	// console, and panic=-1 with -no-reboot ends QEMU, so the test sees the
	// VM gone (Exited) instead of waiting out its timeouts.
	kargs := []string{"console=ttyS0", "panic=-1", "softlockup_panic=1", "loglevel=4", "no_timer_check"}
	a := []string{
		"-machine", "q35,accel=tcg", "-cpu", "max", "-smp", fmt.Sprint(o.CPUs), "-m", fmt.Sprint(o.MemoryMiB),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", o.Kernel, "-initrd", initrd,
		"-serial", "file:" + filepath.Join(vm.dir, "console.log"),
		"-chardev", "socket,id=qmp,path=" + filepath.Join(vm.dir, "qmp.sock") + ",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
	}
	if o.VIOMMU {
		// Must come before the devices it translates for.
		a = append(a, "-device", "intel-iommu,intremap=on,device-iotlb=on")
		kargs = append(kargs, "intel_iommu=on", "iommu=pt")
	}
	a = append(a,
		"-device", "virtio-serial-pci,id=vser0,bus=pcie.0",
		"-chardev", "socket,id=agent,path="+filepath.Join(vm.dir, "agent.sock")+",server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=agent,name=kuryr.agent",
	)
	if m := o.Mgmt; m != nil {
		mac := m.MAC
		if mac == "" {
			mac = MgmtMAC
		}
		nd := "user,id=mgmt,restrict=on"
		for _, f := range m.GuestFwd {
			host, port, _ := strings.Cut(f.Host, ":")
			nd += ",guestfwd=tcp:" + f.Guest + "-cmd:busybox nc " + host + " " + port
		}
		a = append(a, "-netdev", nd, "-device", "virtio-net-pci,netdev=mgmt,bus=pcie.0,mac="+mac)
		kargs = append(kargs, "kuryr.mgmt_mac="+mac)
	}
	for i := range o.RootPorts {
		a = append(a, "-device", fmt.Sprintf("pcie-root-port,id=%s,chassis=%d,slot=%d,bus=pcie.0", rootPort(i), i+1, i+1))
	}
	kargs = append(kargs, o.KernelArgs...)
	return append(a, "-append", strings.Join(kargs, " "))
}

func rootPort(i int) string { return fmt.Sprintf("rp%d", i+1) }

// dialRetry dials the socket name in the VM directory until it answers, QEMU
// exits or ctx ends.
func (vm *VM) dialRetry(ctx context.Context, name string, dial func(context.Context, string) (io.Closer, error)) (io.Closer, error) {
	p := filepath.Join(vm.dir, name)
	for {
		c, err := dial(ctx, p)
		if err == nil {
			return c, nil
		}
		select {
		case <-vm.exited:
			return nil, fmt.Errorf("start vm: qemu exited (%v) before %s answered: %s", vm.waitErr, name, vm.diagnostics())
		case <-ctx.Done():
			return nil, fmt.Errorf("start vm: %s: %w (last error: %v)", name, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Exited is closed once QEMU has exited: a guest kernel panic (with
// -no-reboot), a QEMU error, or Close.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// SoftLockedUp says whether the guest kernel reported a soft lockup (a CPU
// stuck in the kernel for over 20 s) on its console.
func (vm *VM) SoftLockedUp() bool {
	return strings.Contains(vm.Console(math.MaxInt), "BUG: soft lockup")
}

// Dir is the VM's state directory: sockets, console.log and qemu.log. It is
// removed by Close.
func (vm *VM) Dir() string { return vm.dir }

// Console returns the last n bytes of the guest's serial console.
func (vm *VM) Console(n int) string { return tail(filepath.Join(vm.dir, "console.log"), n) }

func (vm *VM) diagnostics() string {
	return fmt.Sprintf("qemu log: %q; console tail: %q", tail(filepath.Join(vm.dir, "qemu.log"), 2000), vm.Console(3000))
}

// diagnosticTimeout bounds RunForDiagnostics.
const diagnosticTimeout = time.Minute

// RunForDiagnostics runs script in the guest for a failed test's log (the
// tails of the guest's logs), within a minute: a wedged guest must turn
// into an error here, not into the test binary's timeout. A VM that has
// exited is an error at once.
func (vm *VM) RunForDiagnostics(script string) (Result, error) {
	select {
	case <-vm.exited:
		return Result{}, fmt.Errorf("QEMU has exited (%v): a guest kernel panic ends it with no error", vm.waitErr)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), diagnosticTimeout)
	defer cancel()
	return vm.Agent.Run(ctx, script)
}

// Exec runs cmd in the guest and returns its stdout and exit code; a
// non-zero exit code is not an error. Agent.Run also returns stderr.
func (vm *VM) Exec(ctx context.Context, cmd string) (string, int, error) {
	res, err := vm.Agent.Run(ctx, cmd)
	return res.Stdout, res.ExitCode, err
}

// Close stops QEMU (quit over QMP, then kill) and removes the VM directory.
func (vm *VM) Close() error {
	if vm.Agent != nil {
		vm.Agent.Close()
	}
	if vm.cmd != nil && vm.cmd.Process != nil {
		if vm.QMP != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = vm.QMP.Execute(ctx, "quit", nil, nil)
			cancel()
		}
		select {
		case <-vm.exited:
		case <-time.After(5 * time.Second):
			_ = vm.cmd.Process.Kill()
			<-vm.exited
		}
	}
	if vm.QMP != nil {
		vm.QMP.Close()
	}
	for _, n := range vm.nics {
		n.closeSink()
	}
	return os.RemoveAll(vm.dir)
}

func concatFiles(dst string, srcs []string) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	for _, s := range srcs {
		in, err := os.Open(s)
		if err != nil {
			out.Close()
			return err
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			out.Close()
			return fmt.Errorf("append %s to %s: %w", s, dst, err)
		}
	}
	return out.Close()
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
