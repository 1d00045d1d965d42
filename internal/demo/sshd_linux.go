package demo

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd when this process dies, even by
// SIGKILL: an sshd serving a connection that is still open (a client
// other than this process) would otherwise outlive the demo.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
