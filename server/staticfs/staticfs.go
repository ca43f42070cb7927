// Package staticfs serves the static file tree (tftpboot) over plain HTTP
// without ever following a symbolic link or leaving its root: any path
// with a symlink in any component, or naming something other than a
// regular file or directory, is answered 404, and directories are only
// listed when listing is enabled. Plugin providers unpack into this tree,
// so a link such as shadow -> /etc/shadow or one to token.key must never
// be served.
package staticfs

import (
	"errors"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
)

// Handler serves files below root.
type Handler struct {
	root    string
	listing bool
}

// New returns a handler for the tree at root; listing enables directory
// listings (off by default in provisiond, --static-listing).
func New(root string, listing bool) *Handler {
	return &Handler{root: root, listing: listing}
}

// ServeHTTP answers GET and HEAD for regular files (and, with listing,
// directories) reached without any symbolic link.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed: the static file server only answers GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	f, info, err := h.open(r.URL.Path)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	if info.IsDir() {
		if !h.listing {
			http.Error(w, "403 forbidden: directory listings are disabled (--static-listing / RS_STATIC_LISTING enables them)", http.StatusForbidden)
			return
		}
		h.list(w, r, f)
		return
	}
	http.ServeContent(w, r, info.Name(), info.ModTime(), f)
}

// open resolves name below the root one component at a time with Lstat,
// refusing any symlink, and opens the result through an os.Root (so no
// path can leave the tree even if a component is swapped for a link
// between the checks); the opened file must be the very file checked.
func (h *Handler) open(name string) (*os.File, fs.FileInfo, error) {
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	rel := "."
	if clean != "" {
		rel = clean
	}
	root, err := os.OpenRoot(h.root)
	if err != nil {
		return nil, nil, fmt.Errorf("open static root: %w", err)
	}
	defer root.Close()
	walked := ""
	var last fs.FileInfo
	if clean == "" {
		if last, err = root.Lstat("."); err != nil {
			return nil, nil, err
		}
	}
	for _, part := range strings.Split(clean, "/") {
		if part == "" {
			continue
		}
		walked = path.Join(walked, part)
		if last, err = root.Lstat(walked); err != nil {
			return nil, nil, err
		}
		if last.Mode()&fs.ModeSymlink != 0 {
			return nil, nil, fmt.Errorf("%s is a symbolic link: %w", walked, fs.ErrPermission)
		}
	}
	if !last.Mode().IsRegular() && !last.IsDir() {
		return nil, nil, fmt.Errorf("%s is not a regular file: %w", rel, fs.ErrPermission)
	}
	f, err := root.Open(rel)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err != nil || !os.SameFile(info, last) {
		f.Close()
		return nil, nil, errors.Join(fmt.Errorf("%s changed while being opened: %w", rel, fs.ErrPermission), err)
	}
	return f, info, nil
}

// list writes a plain HTML listing of the directory's regular files and
// directories (symlinks and special files are left out).
func (h *Handler) list(w http.ResponseWriter, r *http.Request, dir *os.File) {
	if !strings.HasSuffix(r.URL.Path, "/") {
		http.Redirect(w, r, path.Base(r.URL.Path)+"/", http.StatusMovedPermanently)
		return
	}
	entries, err := dir.ReadDir(-1)
	if err != nil {
		http.Error(w, "500 cannot read directory", http.StatusInternalServerError)
		return
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintln(w, "<!doctype html>\n<pre>")
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir():
			name += "/"
		case !e.Type().IsRegular():
			continue
		}
		u := url.URL{Path: name}
		fmt.Fprintf(w, "<a href=\"%s\">%s</a>\n", u.String(), html.EscapeString(name))
	}
	fmt.Fprintln(w, "</pre>")
}
