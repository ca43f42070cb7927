package staticfs

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSpecialFilesAndMethods: a FIFO (which http.FileServer would block
// opening) and other non-regular files answer 404 at once; only GET and
// HEAD are served.
func TestSpecialFilesAndMethods(t *testing.T) {
	root := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(root, "pipe"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := New(root, true)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/pipe", 404},
		{"GET", "/f", 200},
		{"HEAD", "/f", 200},
		{"POST", "/f", 405},
		{"GET", "/", 200},
		{"GET", "/nope", 404},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, w.Code, tc.want)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if body := w.Body.String(); !strings.Contains(body, `href="f"`) || strings.Contains(body, "pipe") {
		t.Errorf("listing %q: want f, not the FIFO", body)
	}
}
