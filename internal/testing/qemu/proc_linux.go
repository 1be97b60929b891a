package qemu

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill QEMU when the process that started it
// dies, so that a test binary killed by a timeout leaves no VM behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
