package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/provisionhq/provision/server/pluginhost/sandbox"
)

// Sandbox configures the confinement of plugin processes (see package
// sandbox and README "Plugin containment").
type Sandbox struct {
	// Enabled runs every plugin process (define, unpack, listen) through
	// the sandbox helper: no_new_privs, no core dumps, Landlock where the
	// kernel has it and, when the host runs as root, User.
	Enabled bool
	// User is the account plugins run as when the host runs as root. It
	// must exist; an account with uid 0 (e.g. "root") means plugins run
	// as root, which the log and each plugin's Meta say. Ignored when
	// the host is not root (it cannot switch users).
	User string
	// NoLandlock turns Landlock off.
	NoLandlock bool
	// Helper is an executable whose main calls sandbox.Main first;
	// default os.Executable(), which then must have called sandbox.Main.
	Helper string
}

// SwitchesUser reports whether a host with this configuration runs its
// plugins as another user: it is enabled, runs as root and User is an
// existing account other than root. (New reports a bad User.)
func (s Sandbox) SwitchesUser() bool {
	if !s.Enabled || os.Geteuid() != 0 || s.User == "" {
		return false
	}
	uid, _, err := sandbox.LookupUser(s.User)
	return err == nil && uid != 0
}

// MetaSandbox is the Meta key on a Plugin that records what the host
// enforces on its running process.
const MetaSandbox = "plugin-sandbox"

// sandboxState is the host's resolved sandbox configuration.
type sandboxState struct {
	on         bool
	switchUser bool
	user       string
	uid, gid   int
	landlock   bool
	helper     string
}

// newSandboxState resolves cfg: the helper, and the user when running
// as root.
func newSandboxState(cfg Sandbox) (sandboxState, error) {
	sb := sandboxState{on: cfg.Enabled, landlock: !cfg.NoLandlock, helper: cfg.Helper, user: cfg.User}
	if !sb.on {
		return sb, nil
	}
	if sb.helper == "" {
		if !sandbox.Available() {
			return sb, errors.New("pluginhost: the plugin sandbox needs sandbox.Main called at the start of main (or TestMain), or Sandbox.Helper")
		}
		exe, err := os.Executable()
		if err != nil {
			return sb, fmt.Errorf("pluginhost: plugin sandbox helper: %w", err)
		}
		sb.helper = exe
	}
	if os.Geteuid() != 0 {
		return sb, nil
	}
	if sb.user == "" {
		return sb, errors.New("pluginhost: running as root, the plugin sandbox needs a user to run plugins as")
	}
	uid, gid, err := sandbox.LookupUser(sb.user)
	if err != nil {
		return sb, fmt.Errorf("pluginhost: %w (create the account or choose another one for plugins)", err)
	}
	if uid != 0 {
		sb.switchUser, sb.uid, sb.gid = true, uid, gid
	}
	return sb, nil
}

// policy is the sandbox policy of a process with the given directories.
func (sb sandboxState) policy(rw, sockets []string) sandbox.Policy {
	return sandbox.Policy{SwitchUser: sb.switchUser, UID: sb.uid, GID: sb.gid, Landlock: sb.landlock, RW: rw, Sockets: sockets}
}

// confine makes cmd run confined to rw (and sockets, a directory it may
// also connect to sockets in) and returns what is enforced. cmd.Env and
// cmd.Dir must be set. Without a sandbox it returns "none".
func (sb sandboxState) confine(cmd *exec.Cmd, rw, sockets []string) (string, error) {
	if !sb.on {
		return "none", nil
	}
	pol := sb.policy(rw, sockets)
	if len(rw) > 0 {
		cmd.Env = append(cmd.Env, "TMPDIR="+rw[0])
	}
	if err := sandbox.Wrap(cmd, sb.helper, pol); err != nil {
		return "", err
	}
	return sandbox.Describe(pol, sb.user), nil
}

// own gives path (not following symlinks) and, for a directory,
// everything below it to the plugin user.
func (sb sandboxState) own(path string) error {
	if !sb.switchUser {
		return nil
	}
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, sb.uid, sb.gid); err != nil {
			return fmt.Errorf("give %s to the plugin user: %w", p, err)
		}
		return nil
	})
}

// prepareRoot makes dir, a root of per-process directories, enterable
// but not listable by the plugin user (0711), and checks that the user
// can reach it: every directory above must let it pass.
func (sb sandboxState) prepareRoot(dir, what string) error {
	if !sb.switchUser {
		return nil
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("pluginhost: %s %s: %w", what, dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("pluginhost: %s %s must be a directory of this user, not a symlink", what, dir)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("pluginhost: %s %s: %w", what, dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("pluginhost: %s %s: %w", what, dir, err)
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if err := sb.canPass(d); err != nil {
			return fmt.Errorf("pluginhost: %s %s is out of reach of plugin user %s: %w; choose a %s outside the base directory", what, dir, sb.user, err, what)
		}
		if d == "/" {
			return nil
		}
	}
}

// canPass reports whether the plugin user may search directory d
// (permission bits only; ACLs are not consulted).
func (sb sandboxState) canPass(d string) error {
	fi, err := os.Stat(d)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	mode := fi.Mode().Perm()
	switch {
	case int(st.Uid) == sb.uid:
		mode >>= 6
	case int(st.Gid) == sb.gid:
		mode >>= 3
	}
	if mode&1 == 0 {
		return fmt.Errorf("%s (mode %#o, uid %d) cannot be entered", d, fi.Mode().Perm(), st.Uid)
	}
	return nil
}

// logSetup logs once what the sandbox enforces on this host.
func (sb sandboxState) logSetup(log *slog.Logger, cfg Config) {
	if !sb.on {
		log.Warn("plugin sandbox off: plugins run as this server's user with its file access")
		return
	}
	user := "unchanged (provisiond is not root)"
	switch {
	case sb.switchUser:
		user = sb.user + " (uid " + strconv.Itoa(sb.uid) + ")"
	case os.Geteuid() == 0:
		user = "root: plugins are NOT separated from the server's keys by user"
	}
	landlock := "off"
	if sb.landlock {
		landlock = "unavailable on this kernel"
		if v := sandbox.LandlockABI(); v > 0 {
			landlock = "ABI " + strconv.Itoa(v)
		}
	}
	log.Info("plugin sandbox", "user", user, "landlock", landlock, "no_new_privs", true,
		"scratch_root", cfg.ScratchRoot, "socket_root", cfg.CommRoot, "helper", sb.helper)
}

// dialPluginSocket connects to the plugin's socket at path. The plugin
// owns the directory path is in, so under a user switch it could put a
// symlink there to make the host talk to somebody else's socket; the
// socket is therefore opened without following links and dialled
// through its descriptor.
func (sb sandboxState) dialPluginSocket(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	if !sb.switchUser {
		return d.DialContext(ctx, "unix", path)
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: fmt.Errorf("%s is not a socket", path)}
	}
	return d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd))
}
