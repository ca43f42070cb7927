package pluginhost

import (
	"errors"
	"os/exec"
	"syscall"
)

// setProcAttrs puts the child in its own process group (so stopping it
// also stops anything it spawned) and has the kernel kill it if the server
// dies, so a crashed server never leaves orphan plugins holding sockets.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup signals the child's process group: SIGKILL when hard,
// SIGTERM otherwise.
func killGroup(cmd *exec.Cmd, hard bool) error {
	if cmd.Process == nil {
		return nil
	}
	sig := syscall.SIGTERM
	if hard {
		sig = syscall.SIGKILL
	}
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
		// The group may be gone already; fall back to the process.
		return cmd.Process.Signal(sig)
	}
	return nil
}

func isTextBusy(err error) bool { return errors.Is(err, syscall.ETXTBSY) }
