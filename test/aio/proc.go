package aio

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one program the environment runs, its output in a log file.
type Process struct {
	Name string
	// Log is the file its stdout and stderr go to.
	Log string

	bin  string
	args []string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func newProcess(name, logDir, bin string, args, env []string) *Process {
	return &Process{Name: name, Log: filepath.Join(logDir, name+".log"), bin: bin, args: args, env: env}
}

// start runs the program. It dies with the environment's process
// (SIGKILL on parent death), so a killed `kuryr-aio` leaves no orphan.
func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !p.exited() {
		return fmt.Errorf("start %s: already running as pid %d", p.Name, p.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.Name, err)
	}
	fmt.Fprintf(logf, "=== %s %s %v\n", time.Now().Format(time.RFC3339Nano), p.bin, p.args)
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), p.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s (%s): %w", p.Name, p.bin, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start runs the program again once it has exited (a crash, an exit on
// error), as the kubelet restarts a pod's container: same arguments, same
// log (appended to).
func (p *Process) Start() error { return p.start() }

// Pid is the running process's ID, 0 when it is not running.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited returns a channel closed when the current run ends, and a function
// giving its error.
func (p *Process) Exited() (<-chan struct{}, func() error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	done := p.done
	return done, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	}
}

// stop sends SIGTERM to the process group, and SIGKILL after grace.
func (p *Process) stop(grace time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("stop %s: pid %d survived SIGKILL", p.Name, pgid)
	}
}

// kill ends the process at once, as a crash would.
func (p *Process) kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return errors.New("kill " + p.Name + ": not started")
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("kill %s: pid %d survived SIGKILL", p.Name, cmd.Process.Pid)
	}
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// Tail returns the last n lines of the process's log, for error messages
// (the log itself goes with the state directory).
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n    " + strings.Join(lines, "\n    ")
}

// SaveLogs copies the environment's process logs, and the real nodes'
// container logs of kuryr-dpdk's and kube-system's pods, to dst (which
// survives Close), for a look after a failure.
func (e *Env) SaveLogs(dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(e.LogDir())
	if err != nil {
		return err
	}
	for _, ent := range entries {
		if err := copyFile(filepath.Join(e.LogDir(), ent.Name()), filepath.Join(dst, ent.Name())); err != nil {
			return err
		}
	}
	return e.savePodLogs(dst)
}

// savePodLogs copies the container logs the real nodes' kubelets keep for
// the pods of kuryr-dpdk (kuryr-controller, kuryr-daemon) and kube-system
// (Multus) into dst/pods-<node>/<pod directory>/<container>/: what those
// processes said is what a failed test's reader needs next to the control
// plane's and the kubelets' logs.
func (e *Env) savePodLogs(dst string) error {
	var errs []error
	for _, n := range e.Nodes {
		root := n.FS("/var/log/pods")
		if root == "" {
			continue
		}
		pods, err := os.ReadDir(root)
		if err != nil {
			if !os.IsNotExist(err) {
				errs = append(errs, err)
			}
			continue
		}
		for _, pod := range pods {
			if !strings.HasPrefix(pod.Name(), "kuryr-dpdk_") && !strings.HasPrefix(pod.Name(), "kube-system_") {
				continue
			}
			err := filepath.WalkDir(filepath.Join(root, pod.Name()), func(path string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err // symlinks and the like are not followed
				}
				rel, err := filepath.Rel(root, path)
				if err != nil {
					return err
				}
				to := filepath.Join(dst, "pods-"+n.Name, rel)
				if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
					return err
				}
				return copyFile(path, to)
			})
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
