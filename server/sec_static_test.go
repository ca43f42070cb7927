package server_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/server/config"
	"github.com/provisionhq/provision/server/servertest"
)

func staticGet(t *testing.T, base, path string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// staticTree lays out tftpboot with a regular file, a directory, and
// symlinks to a secret outside the tree (as a provider's unpack could
// leave shadow -> /etc/shadow) and to files and directories inside it.
func staticTree(t *testing.T, ts *servertest.Server) {
	t.Helper()
	root := filepath.Join(ts.BaseRoot, "tftpboot")
	secret := filepath.Join(t.TempDir(), "shadow")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(secret, []byte("root:SECRET-OUTSIDE"), 0o644))
	must(os.MkdirAll(filepath.Join(root, "files", "sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "files", "ok.txt"), []byte("plain file"), 0o644))
	must(os.WriteFile(filepath.Join(root, "files", "sub", "inner.txt"), []byte("SECRET-INSIDE"), 0o644))
	must(os.Symlink(secret, filepath.Join(root, "files", "shadow")))
	must(os.Symlink(filepath.Join(ts.BaseRoot, "token.key"), filepath.Join(root, "files", "token.key")))
	must(os.Symlink("sub/inner.txt", filepath.Join(root, "files", "inner-link")))
	must(os.Symlink("sub", filepath.Join(root, "files", "dirlink")))
	must(os.Symlink(ts.BaseRoot, filepath.Join(root, "base")))
}

// TestStaticRefusesSymlinks: the unauthenticated static server serves
// regular files but no symlink, whether it points outside the tree (a
// secret, the token signing key, the base directory) or inside it, and
// no path through a linked directory.
func TestStaticRefusesSymlinks(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	staticTree(t, ts)
	if code, body := staticGet(t, ts.StaticURL, "/files/ok.txt"); code != 200 || body != "plain file" {
		t.Fatalf("regular file: %d %q", code, body)
	}
	if code, body := staticGet(t, ts.StaticURL, "/files/sub/inner.txt"); code != 200 || body != "SECRET-INSIDE" {
		t.Fatalf("regular file in a directory: %d %q", code, body)
	}
	for _, p := range []string{"/files/shadow", "/files/token.key", "/files/inner-link", "/files/dirlink/inner.txt",
		"/base/token.key", "/base/provision.db", "/files/../../token.key", "/files/%2e%2e/%2e%2e/token.key"} {
		code, body := staticGet(t, ts.StaticURL, p)
		if code != http.StatusNotFound && code != http.StatusForbidden {
			t.Errorf("GET %s = %d, want 404 or 403", p, code)
		}
		if strings.Contains(body, "SECRET") || strings.Contains(body, "PRIVATE") {
			t.Errorf("GET %s leaked %q", p, body)
		}
	}
}

// TestStaticListingOffByDefault: a directory is not listed unless
// --static-listing is set, and a listing never shows symlinks.
func TestStaticListingOffByDefault(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	staticTree(t, ts)
	for _, p := range []string{"/", "/files/", "/files"} {
		code, body := staticGet(t, ts.StaticURL, p)
		if code != http.StatusForbidden || strings.Contains(body, "ok.txt") || !strings.Contains(body, "--static-listing") {
			t.Errorf("GET %s without listing = %d %q, want 403 naming --static-listing", p, code, body)
		}
	}

	listed := servertest.Start(t, servertest.Options{Config: func(c *config.Config) { c.StaticListing = true }})
	staticTree(t, listed)
	code, body := staticGet(t, listed.StaticURL, "/files/")
	if code != 200 || !strings.Contains(body, "ok.txt") || !strings.Contains(body, "sub/") {
		t.Fatalf("listing = %d %q, want ok.txt and sub/", code, body)
	}
	for _, link := range []string{"shadow", "token.key", "inner-link", "dirlink"} {
		if strings.Contains(body, link) {
			t.Errorf("listing shows symlink %s: %q", link, body)
		}
	}
	if code, _ := staticGet(t, listed.StaticURL, "/files/shadow"); code != http.StatusNotFound {
		t.Errorf("with listing on, symlink served: %d", code)
	}
}
