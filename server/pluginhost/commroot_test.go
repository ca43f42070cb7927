package pluginhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
)

func TestCommRootFor(t *testing.T) {
	short := t.TempDir()
	if got := CommRootFor(short); got != filepath.Join(short, "plugin-comm") {
		t.Fatalf("short base: %s", got)
	}
	long := filepath.Join(short, strings.Repeat("x", 60), strings.Repeat("y", 20))
	got := CommRootFor(long)
	if filepath.Dir(got) != filepath.Clean(os.TempDir()) || !strings.HasPrefix(filepath.Base(got), "provision-comm-") {
		t.Fatalf("long base: %s, want provision-comm-* under %s", got, os.TempDir())
	}
	if again := CommRootFor(long); again != got {
		t.Fatalf("not stable: %s then %s", got, again)
	}
	if other := CommRootFor(long + "z"); other == got {
		t.Fatalf("two base directories share %s", got)
	}
	for _, base := range []string{short, long, "/" + strings.Repeat("a", 200)} {
		if n := len(CommRootFor(base)) + commSuffix; n > maxSocketPath {
			t.Fatalf("socket paths under %s would be %d bytes", CommRootFor(base), n)
		}
	}
}

// A socket root keeps nothing from a previous run, is private, and is
// refused when it is not a real directory of this user.
func TestPrepareCommRootSweepsLeftovers(t *testing.T) {
	root := filepath.Join(t.TempDir(), "plugin-comm")
	stale := filepath.Join(root, "pv-fake1-12345")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "from"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := prepareCommRoot(root); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(root); err != nil || len(entries) != 0 {
		t.Fatalf("leftovers after prepare: %v %v", entries, err)
	}
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket root mode: %v %v", fi.Mode(), err)
	}

	target := t.TempDir()
	link := filepath.Join(t.TempDir(), "comm")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := prepareCommRoot(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("symlinked socket root accepted: %v", err)
	}
}

// Without a configured root the host makes a private one and removes it
// when it closes.
func TestDefaultCommRootIsRemovedOnClose(t *testing.T) {
	_, h, _ := runningPlugin(t, "fake", &models.Plugin{Name: "f", Provider: "fake"}, nil)
	sock, ok := h.SocketPath("f")
	if !ok {
		t.Fatal("no socket path")
	}
	root := filepath.Dir(filepath.Dir(sock))
	if !strings.HasPrefix(filepath.Base(root), "provision-comm-") {
		t.Fatalf("socket %s not in a private root", sock)
	}
	h.Close()
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("socket root %s still there after Close: %v", root, err)
	}
}
