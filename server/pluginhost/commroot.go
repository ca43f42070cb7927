package pluginhost

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// commSuffix is the longest thing launch appends to the comm root:
// "/pv-" + 16-byte name + "-" + socketDirRandom hex digits + "/from".
const commSuffix = len("/pv-") + 16 + len("-") + socketDirRandom + len("/from")

// socketDirRandom is the number of random hex digits in a socket
// directory's name (64 bits): another plugin of the same user must not
// be able to guess it (the root is not listable by plugins).
const socketDirRandom = 16

// makeSocketDir creates a fresh 0700 directory for one process's sockets
// under root, named after the plugin and 64 random bits.
func makeSocketDir(root, name string) (string, error) {
	for attempt := 0; ; attempt++ {
		b := make([]byte, socketDirRandom/2)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		dir := filepath.Join(root, "pv-"+name+"-"+hex.EncodeToString(b))
		err := os.Mkdir(dir, 0o700)
		if err == nil || !errors.Is(err, os.ErrExist) || attempt >= 3 {
			return dir, err
		}
	}
}

// CommRootFor returns the socket root the plugin host of the provisiond
// whose state lives in baseDir should use: <baseDir>/plugin-comm when
// socket paths under it fit the unix limit (108 bytes), otherwise a
// directory under os.TempDir() whose name is derived from baseDir, so
// that it is the same on every start and a restart can sweep what a
// crashed run left behind.
func CommRootFor(baseDir string) string {
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		abs = filepath.Clean(baseDir)
	}
	if root := filepath.Join(abs, "plugin-comm"); len(root)+commSuffix <= maxSocketPath {
		return root
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(os.TempDir(), "provision-comm-"+hex.EncodeToString(sum[:6]))
}

// PluginDirsFor returns the socket root and the scratch root for the
// provisiond whose state lives in baseDir. When plugins run as another
// user (otherUser) neither may lie in baseDir, which is 0700 and holds
// the server's secrets: both are then directories under os.TempDir()
// named after baseDir, so a restart reuses and sweeps them. Otherwise
// they are CommRootFor(baseDir) and <baseDir>/plugin-scratch.
func PluginDirsFor(baseDir string, otherUser bool) (comm, scratch string) {
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		abs = filepath.Clean(baseDir)
	}
	if !otherUser {
		return CommRootFor(abs), filepath.Join(abs, "plugin-scratch")
	}
	sum := sha256.Sum256([]byte(abs))
	tag := hex.EncodeToString(sum[:6])
	return filepath.Join(os.TempDir(), "provision-comm-"+tag), filepath.Join(os.TempDir(), "provision-scratch-"+tag)
}

// prepareCommRoot makes dir a private (0700) directory of this user and
// removes everything in it: the socket directories of a previous run of
// the same provisiond that did not clean up (crash, SIGKILL). Only one
// provisiond can use a base directory at a time, so nothing in dir is in
// use. A dir that is a symlink or belongs to another user is refused
// rather than trusted.
func prepareCommRoot(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pluginhost: create socket root %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("pluginhost: socket root %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pluginhost: socket root %s is not a directory (a symlink?); remove it", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("pluginhost: socket root %s belongs to uid %d, not to this user; remove it or use another base directory", dir, st.Uid)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("pluginhost: socket root %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pluginhost: read socket root %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pluginhost: remove stale sockets in %s: %w", dir, err)
	}
	return nil
}
