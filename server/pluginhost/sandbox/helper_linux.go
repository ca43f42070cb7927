package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// systemDirs are readable (and executable) for every plugin: programs,
// libraries, certificates, time zones. /etc as a whole is not, only the
// files name resolution, TLS and user lookups need.
func systemDirs() []string {
	return []string{
		"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
		"/etc/ssl/certs", "/etc/pki/tls/certs", "/etc/pki/ca-trust/extracted", "/etc/ca-certificates",
		"/etc/ld.so.conf.d",
	}
}

// systemFiles are single readable files (a symlink such as
// /etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf allows its
// target).
func systemFiles() []string {
	return []string{
		"/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/nsswitch.conf", "/etc/gai.conf",
		"/etc/services", "/etc/protocols", "/etc/passwd", "/etc/group", "/etc/localtime",
		"/etc/timezone", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/mime.types", "/etc/os-release",
		"/dev/zero", "/dev/random", "/dev/urandom", "/proc/sys/net/core/somaxconn",
	}
}

// runHelper confines this process as the request in v says and executes
// the plugin; it returns only on failure.
func runHelper(v string) error {
	// Everything from here to the exec happens on this thread: the
	// Landlock domain and the parent-death signal are per thread, and
	// the exec keeps only the calling thread.
	runtime.LockOSThread()
	var req request
	if err := json.Unmarshal([]byte(v), &req); err != nil {
		return fmt.Errorf("decode policy: %w", err)
	}
	if req.Exe == "" || len(req.Args) == 0 {
		return errors.New("no executable given")
	}
	pol := req.Policy

	// The executable is opened while still the host's user: it usually
	// lies under the base directory, which the plugin user cannot enter.
	exeFD, err := openExecutable(req.Exe)
	if err != nil {
		return err
	}

	// no_new_privs: a setuid or file-capability program the plugin runs
	// gains nothing. Landlock requires it too.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	// No core dumps: they would hold the plugin's token.
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})

	if pol.Landlock {
		if err := restrict(pol, req.Exe); err != nil {
			return err
		}
	}
	if pol.SwitchUser {
		if err := dropTo(pol.UID, pol.GID); err != nil {
			return err
		}
	}
	// A change of credentials clears the parent-death signal the host
	// set; arm it again and make sure the host did not die meanwhile.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("set parent-death signal: %w", err)
	}
	if req.Parent != 0 && os.Getppid() != req.Parent {
		return errors.New("provisiond exited before the plugin started")
	}
	return execFD(exeFD, req.Exe, req.Args, os.Environ())
}

// openExecutable opens exe for execveat. Scripts need the descriptor to
// stay open across the exec (the interpreter reads /dev/fd/N); binaries
// do not.
func openExecutable(exe string) (int, error) {
	fd, err := unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", exe, err)
	}
	if f, err := os.Open(exe); err == nil {
		head := make([]byte, 2)
		n, _ := io.ReadFull(f, head)
		f.Close()
		if n == 2 && string(head) == "#!" {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
				return -1, fmt.Errorf("open %s: %w", exe, err)
			}
		}
	}
	return fd, nil
}

// restrict applies the Landlock ruleset of pol to this thread. Network
// access is not restricted (plugins talk to the API and to BMCs).
func restrict(pol Policy, exe string) error {
	full := landlock.V11
	cfg := landlock.Config{HandledAccessFS: full.HandledAccessFS, Scoped: full.Scoped}.BestEffort()
	rules := []landlock.Rule{
		landlock.RODirs(systemDirs()...).IgnoreIfMissing(),
		landlock.ROFiles(systemFiles()...).IgnoreIfMissing(),
		landlock.RWFiles("/dev/null"),
		// Its own /proc/<pid> (the helper's pid is the plugin's).
		landlock.RODirs("/proc/self"),
		landlock.ROFiles(exe),
	}
	// Certificates the operator points plugins to.
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		rules = append(rules, landlock.ROFiles(f).IgnoreIfMissing())
	}
	if d := os.Getenv("SSL_CERT_DIR"); d != "" {
		rules = append(rules, landlock.RODirs(filepath.SplitList(d)...).IgnoreIfMissing())
	}
	if len(pol.RW) > 0 {
		rules = append(rules, landlock.RWDirs(pol.RW...))
	}
	if len(pol.Sockets) > 0 {
		rules = append(rules, landlock.RWDirs(pol.Sockets...).WithResolveUnix())
	}
	fd, flags, err := cfg.NewRulesetFD(rules...)
	if err != nil {
		return fmt.Errorf("landlock ruleset: %w", err)
	}
	if fd < 0 {
		return nil // no Landlock on this kernel (best effort)
	}
	defer unix.Close(fd)
	if err := llsyscall.LandlockRestrictSelf(fd, flags); err != nil {
		return fmt.Errorf("landlock restrict: %w", err)
	}
	return nil
}

// dropTo switches every thread to uid/gid with no supplementary groups.
func dropTo(uid, gid int) error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("clear groups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	if os.Getuid() != uid || os.Geteuid() != uid || os.Getgid() != gid {
		return fmt.Errorf("still uid %d gid %d after switching to %d/%d", os.Getuid(), os.Getgid(), uid, gid)
	}
	return nil
}

// execFD replaces the process with the executable open as fd.
func execFD(fd int, exe string, argv, envv []string) error {
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return fmt.Errorf("exec %s: %w", exe, err)
	}
	envvp, err := syscall.SlicePtrFromStrings(envv)
	if err != nil {
		return fmt.Errorf("exec %s: %w", exe, err)
	}
	empty, _ := syscall.BytePtrFromString("")
	_, _, e := syscall.RawSyscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envvp[0])), unix.AT_EMPTY_PATH, 0)
	err = e
	if errors.Is(err, unix.EACCES) {
		return fmt.Errorf("exec %s: %w (it must be executable by uid %d: chmod o+x, or 0755)", exe, err, os.Getuid())
	}
	return fmt.Errorf("exec %s: %w", exe, err)
}
