package crashtest

import (
	"os/exec"
	"syscall"
)

// orphanProof makes cmd die with the test: a test binary killed by a signal runs no
// cleanup, and its agent and central would go on.
func orphanProof(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
