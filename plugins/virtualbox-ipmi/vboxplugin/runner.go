package vboxplugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"time"
)

// Runner runs one VBoxManage command with the given arguments and returns
// its stdout and stderr. A non-zero exit is an error that still comes with
// the captured output.
type Runner interface {
	// Run runs VBoxManage with args until it exits or ctx ends.
	Run(ctx context.Context, args ...string) (stdout, stderr string, err error)
}

// maxOutput bounds the captured stdout/stderr of one command so that a
// misbehaving VBoxManage cannot exhaust memory.
const maxOutput = 1 << 20

// cappedBuffer keeps the first maxOutput bytes and discards the rest.
type cappedBuffer struct{ bytes.Buffer }

// Write implements io.Writer. It reports every byte as written, so exec
// keeps draining the pipe and the command is not stopped by a short write.
func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// ExecRunner runs the real VBoxManage binary.
type ExecRunner struct {
	// VBoxManage is the absolute path of the binary.
	VBoxManage string
	// User, when set, is the account the command runs as, through Sudo.
	User string
	// Sudo is the absolute path of sudo (used only with User).
	Sudo string
	// Timeout bounds each command (default 2 minutes).
	Timeout time.Duration
}

// NewExecRunner resolves vboxmanage (a path or a command name; empty means
// VBoxManage, then vboxmanage, on PATH) and, when runAs is set and is not
// the current user, sudo. The errors say what is missing.
func NewExecRunner(vboxmanage, runAs string, timeout time.Duration) (*ExecRunner, error) {
	candidates := []string{"VBoxManage", "vboxmanage"}
	if vboxmanage != "" {
		candidates = []string{vboxmanage}
	}
	var path string
	var lastErr error
	for _, c := range candidates {
		p, err := exec.LookPath(c)
		if err == nil {
			path = p
			break
		}
		lastErr = err
	}
	if path == "" {
		return nil, fmt.Errorf("Failed to find VBoxManage/vboxmanage (set %s to its path): %w", ParamVBoxManage, lastErr)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	r := &ExecRunner{VBoxManage: abs, Timeout: timeout}
	if runAs != "" && !isCurrentUser(runAs) {
		sudo, err := exec.LookPath("sudo")
		if err != nil {
			return nil, fmt.Errorf("%s is %q but sudo was not found to run VBoxManage as that user: %w", ParamUser, runAs, err)
		}
		r.User, r.Sudo = runAs, sudo
	}
	if r.Timeout <= 0 {
		r.Timeout = 2 * time.Minute
	}
	return r, nil
}

func isCurrentUser(name string) bool {
	u, err := user.Current()
	return err == nil && u.Username == name
}

// Argv returns the full command line Run executes for args.
func (r *ExecRunner) Argv(args ...string) []string {
	if r.User == "" {
		return append([]string{r.VBoxManage}, args...)
	}
	// -n: fail at once instead of waiting for a password prompt that no
	// one can answer (DRP ran plain `sudo -u`).
	return append([]string{r.Sudo, "-n", "-u", r.User, r.VBoxManage}, args...)
}

// Run implements Runner with exec.CommandContext and the configured timeout.
func (r *ExecRunner) Run(ctx context.Context, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	argv := r.Argv(args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr cappedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out, errOut := stdout.String(), stderr.String()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		msg := strings.TrimSpace(errOut)
		if msg == "" {
			msg = strings.TrimSpace(out)
		}
		return out, errOut, &CommandError{Args: args, Err: err, Output: msg}
	}
	return out, errOut, nil
}

// CommandError is a failed VBoxManage command.
type CommandError struct {
	// Args are the VBoxManage arguments (no secrets are ever passed).
	Args []string
	// Err is the exec error (exit status, timeout).
	Err error
	// Output is the trimmed stderr, or stdout when stderr was empty.
	Output string
}

// Error implements error: the VBoxManage verb, why it failed and what it
// printed, so the message says what to fix.
func (e *CommandError) Error() string {
	verb := "VBoxManage"
	if len(e.Args) > 0 {
		verb += " " + e.Args[0]
	}
	if e.Output == "" {
		return fmt.Sprintf("%s: %v", verb, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", verb, e.Err, e.Output)
}

// Unwrap returns the exec error so errors.Is can spot a timeout
// (IsTimeout) or an exit status.
func (e *CommandError) Unwrap() error { return e.Err }

// IsTimeout reports whether err is a command that ran out of time.
func IsTimeout(err error) bool { return errors.Is(err, context.DeadlineExceeded) }
