package hostmodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provisionhq/provision/server/pluginhost"
)

// Socket directories a crashed provisiond left behind are removed when it
// starts again on the same base directory, and plugin sockets live in that
// provisiond's own 0700 root, not loose in /tmp.
func TestStaleSocketDirsSweptAtStart(t *testing.T) {
	base := t.TempDir()
	// As root the plugins run as nobody and their sockets cannot live
	// in the base directory; the root is then 0711 (enterable, not
	// listable) with a 0700 directory per process owned by the plugin
	// user.
	otherUser := pluginhost.Sandbox{Enabled: true, User: "nobody"}.SwitchesUser()
	root, _ := pluginhost.PluginDirsFor(base, otherUser)
	wantMode := os.FileMode(0o700)
	if otherUser {
		wantMode = 0o711
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	stale := filepath.Join(root, "pv-fake1-4242")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "from"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	e := startEnv(t, base, "", map[string]string{"fake": "fake"})
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale socket dir %s survived the start: %v", stale, err)
	}
	e.createPlugin("fake1", "fake", nil)
	e.waitPid("fake1")
	sock, ok := e.mod.Host().SocketPath("fake1")
	if !ok || !strings.HasPrefix(sock, root+string(filepath.Separator)) || len(sock) > 107 {
		t.Fatalf("plugin socket %q (ok %v), want one under %s within the unix limit", sock, ok, root)
	}
	fi, err := os.Stat(root)
	if err != nil || fi.Mode().Perm() != wantMode {
		t.Fatalf("socket root %s: %v %v", root, fi.Mode(), err)
	}
}
