// Package sandbox confines plugin processes. Its one job: start a plugin
// executable as an unprivileged user and, where the kernel supports
// Landlock, restricted to the directories it needs.
//
// Go cannot run code between fork and exec, so the confinement happens in
// a helper: the host runs its own executable (the one that called Main)
// with the plugin's command line and a Policy in an environment variable.
// Main, called first thing in main (and in TestMain of tests that start
// plugins), recognises that variable and, still as the host's user,
// opens the plugin executable, applies the Landlock ruleset, sets
// no_new_privs, drops to the policy's user and group (with no
// supplementary groups), re-arms the parent-death signal and replaces
// itself with the plugin through execveat(2) on the opened file, so the
// plugin's path need not be reachable by the unprivileged user (the
// plugin root sits inside the 0700 base directory). Main never returns
// in the helper.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync/atomic"

	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// envPolicy carries the helper's Policy (JSON) from host to helper; its
// presence is what makes Main act as the helper.
const envPolicy = "PROVISION_PLUGIN_SANDBOX"

// ErrorPrefix starts the line the helper prints on stderr when it cannot
// start the plugin.
const ErrorPrefix = "provision-plugin-sandbox: "

// helperExit is the exit status of a helper that could not start the
// plugin (its reason is on stderr), as a shell's "cannot execute".
const helperExit = 126

// Policy is what one plugin process is confined to.
type Policy struct {
	// SwitchUser drops to UID and GID (no supplementary groups) before
	// the plugin runs; it needs the host to run as root.
	SwitchUser bool `json:"switchUser,omitempty"`
	// UID and GID are the plugin's user and group when SwitchUser.
	UID int `json:"uid,omitempty"`
	GID int `json:"gid,omitempty"`
	// Landlock restricts the filesystem (and, from ABI 6, signals and
	// abstract unix sockets) to the paths below, where the kernel
	// supports it.
	Landlock bool `json:"landlock,omitempty"`
	// RW are directories with full access (scratch, unpack directory).
	RW []string `json:"rw,omitempty"`
	// Sockets are directories with full access that may also hold unix
	// sockets to connect to (the instance's socket directory).
	Sockets []string `json:"sockets,omitempty"`
}

// request is what the host hands the helper.
type request struct {
	Policy Policy   `json:"policy"`
	Exe    string   `json:"exe"`
	Args   []string `json:"args"` // argv, Args[0] included
	Parent int      `json:"parent"`
}

var mainCalled atomic.Bool

// Main must be the first call of main (and of TestMain in test binaries
// that start sandboxed plugins). In a helper it confines itself and
// executes the plugin, never returning; otherwise it only records that
// this executable can serve as the helper (see Available) and returns.
func Main() {
	if v, ok := os.LookupEnv(envPolicy); ok {
		os.Unsetenv(envPolicy)
		err := runHelper(v)
		fmt.Fprintf(os.Stderr, "%s%v\n", ErrorPrefix, err)
		os.Exit(helperExit)
	}
	mainCalled.Store(true)
}

// Available reports whether Main ran in this process, i.e. whether
// os.Executable() can be used as the helper.
func Available() bool { return mainCalled.Load() }

// LandlockABI returns the Landlock ABI version of the running kernel, 0
// when Landlock is missing or disabled. (One system call; it is asked at
// start and per plugin start, so it is not cached.)
func LandlockABI() int {
	if v, err := llsyscall.LandlockGetABIVersion(); err == nil && v > 0 {
		return v
	}
	return 0
}

// LookupUser returns the uid and gid of the account name (or of a
// numeric uid).
func LookupUser(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if n, perr := strconv.Atoi(name); perr == nil && errors.As(err, &unknown) {
			u, err = user.LookupId(strconv.Itoa(n))
		}
		if err != nil {
			return 0, 0, fmt.Errorf("plugin user %q: %w", name, err)
		}
	}
	if uid, err = strconv.Atoi(u.Uid); err != nil {
		return 0, 0, fmt.Errorf("plugin user %q: uid %q: %w", name, u.Uid, err)
	}
	if gid, err = strconv.Atoi(u.Gid); err != nil {
		return 0, 0, fmt.Errorf("plugin user %q: gid %q: %w", name, u.Gid, err)
	}
	return uid, gid, nil
}

// Wrap turns cmd, built with exec.Command for the plugin, into a command
// that runs helper (an executable that calls Main) which confines itself
// with pol and then executes the plugin with cmd's arguments and
// environment. cmd.Env must be set. Call it before cmd.Start.
func Wrap(cmd *exec.Cmd, helper string, pol Policy) error {
	if cmd.Env == nil {
		return errors.New("sandbox: cmd.Env must be set")
	}
	req := request{Policy: pol, Exe: cmd.Path, Args: append([]string{}, cmd.Args...), Parent: os.Getpid()}
	buf, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("sandbox: encode policy: %w", err)
	}
	env := make([]string, 0, len(cmd.Env)+1)
	for _, kv := range cmd.Env {
		if !strings.HasPrefix(kv, envPolicy+"=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, envPolicy+"="+string(buf))
	cmd.Path = helper
	cmd.Args = []string{helper}
	cmd.Err = nil
	return nil
}

// Describe is a one-line account of what pol enforces on this kernel,
// for the log and the Plugin's Meta.
func Describe(pol Policy, userName string) string {
	var b strings.Builder
	if pol.SwitchUser {
		fmt.Fprintf(&b, "user=%s(uid %d, gid %d, no groups)", userName, pol.UID, pol.GID)
	} else {
		fmt.Fprintf(&b, "user=unchanged(uid %d: provisiond is not root or runs plugins as root)", os.Getuid())
	}
	b.WriteString(" no_new_privs=yes")
	switch v := LandlockABI(); {
	case !pol.Landlock:
		b.WriteString(" landlock=off")
	case v == 0:
		b.WriteString(" landlock=unavailable(kernel)")
	default:
		fmt.Fprintf(&b, " landlock=abi%d(fs rw=%s", v, strings.Join(append(append([]string{}, pol.RW...), pol.Sockets...), ","))
		b.WriteString(" ro=system paths+provider")
		if v >= 6 {
			b.WriteString("; signals and abstract sockets scoped")
		}
		b.WriteString(")")
	}
	return b.String()
}
