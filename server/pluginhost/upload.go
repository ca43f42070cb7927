package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/provisionhq/provision/models"
)

// MaxProviderSize bounds an uploaded provider executable.
const MaxProviderSize = 1 << 30

// Upload installs (or atomically replaces) a provider from body: the bytes
// go to a temp file in PluginRoot, define and unpack run on it, the content
// layer and kinds are loaded, and only then is it renamed into place under
// the name its define reports (DRP: "the define Name wins"). Its instances
// are then restarted on the new binary. size is the announced length (-1
// when unknown). A content clash with user objects is a 409 unless
// replaceWritable (DRP silently deletes them).
func (h *Host) Upload(ctx context.Context, urlName string, body io.Reader, size int64, replaceWritable bool) (*models.PluginProviderUploadInfo, error) {
	perr := func(code int, format string, args ...any) error {
		return &models.Error{Model: "plugin_providers", Key: urlName, Type: "POST", Code: code,
			Messages: []string{fmt.Sprintf(format, args...)}}
	}
	if !models.NameRE.MatchString(urlName) {
		return nil, perr(http.StatusBadRequest, "Invalid plugin provider name %q", urlName)
	}
	if body == nil {
		return nil, perr(http.StatusBadRequest, "Missing upload body")
	}
	tmp := filepath.Join(h.cfg.PluginRoot, "."+urlName+".part")
	// 0755: sandboxed plugins run as another user, which must be able to
	// execute the file (it is opened by the host, so the 0700 base
	// directory above it stays closed to that user).
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, perr(http.StatusConflict, "Upload of %s already in progress", urlName)
		}
		return nil, perr(http.StatusConflict, "Cannot create upload file: %v", err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = os.Remove(tmp)
		}
	}()
	hs := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, hs), io.LimitReader(body, MaxProviderSize+1))
	cerr := f.Close()
	switch {
	case err != nil:
		return nil, perr(http.StatusBadRequest, "Failed to upload %s: %v", urlName, err)
	case cerr != nil:
		return nil, perr(http.StatusInsufficientStorage, "Failed to write %s: %v", urlName, cerr)
	case n > MaxProviderSize:
		return nil, perr(http.StatusRequestEntityTooLarge, "Provider %s is larger than %d bytes", urlName, MaxProviderSize)
	case n == 0:
		return nil, perr(http.StatusBadRequest, "Missing upload body")
	case size >= 0 && n != size:
		return nil, perr(http.StatusBadRequest, "Failed to upload entire file %s: %d bytes expected, %d bytes received", urlName, size, n)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, perr(http.StatusInsufficientStorage, "Failed to chmod %s: %v", urlName, err)
	}

	h.provMu.Lock()
	defer h.provMu.Unlock()
	p, err := h.define(ctx, tmp)
	if err != nil {
		return nil, perr(http.StatusBadRequest, "Import plugin failed %s: %v", urlName, err)
	}
	p.sha256, p.size = hex.EncodeToString(hs.Sum(nil)), n
	name := p.def.Name
	final := filepath.Join(h.cfg.PluginRoot, name)
	old := h.provider(name)
	commit := func() error {
		if err := os.Rename(tmp, final); err != nil {
			return perr(http.StatusInsufficientStorage, "Failed to install %s: %v", name, err)
		}
		keep = true
		p.path, p.file = final, name
		if old != nil && old.path != final {
			_ = os.Remove(old.path)
		}
		return nil
	}
	if err := h.install(ctx, p, replaceWritable, commit); err != nil {
		var me *models.Error
		if errors.As(err, &me) {
			cp := *me
			cp.Model, cp.Key, cp.Type = "plugin_providers", name, "POST"
			if len(cp.Messages) > 0 {
				cp.Messages[0] = "Import plugin failed " + name + ": " + cp.Messages[0]
			}
			return nil, &cp
		}
		return nil, perr(http.StatusBadRequest, "Import plugin failed %s: %v", name, err)
	}
	h.mu.Lock()
	delete(h.broken, name)
	delete(h.broken, urlName)
	h.mu.Unlock()
	return &models.PluginProviderUploadInfo{Path: name, Size: n}, nil
}

// DeleteProvider removes a provider's executable, content layer, kinds
// and unpacked files; its instances stop and report "Missing Plugin
// Provider". Broken entries (define failed) can be deleted too.
func (h *Host) DeleteProvider(ctx context.Context, name string) error {
	h.provMu.Lock()
	defer h.provMu.Unlock()
	notFound := &models.Error{Model: "plugin_providers", Key: name, Type: "DELETE", Code: http.StatusNotFound, Messages: []string{"Not Found"}}
	h.mu.Lock()
	delete(h.removed, name) // deleted on purpose now
	h.mu.Unlock()
	p := h.provider(name)
	if p == nil {
		h.mu.Lock()
		b, ok := h.broken[name]
		if ok {
			delete(h.broken, name)
		}
		h.mu.Unlock()
		if !ok {
			return notFound
		}
		if err := os.Remove(b.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return &models.Error{Model: "plugin_providers", Key: name, Type: "DELETE", Code: http.StatusInternalServerError,
				Messages: []string{err.Error()}}
		}
		h.deleteRecord(name)
		return nil
	}
	if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return &models.Error{Model: "plugin_providers", Key: name, Type: "DELETE", Code: http.StatusInternalServerError,
			Messages: []string{err.Error()}}
	}
	h.uninstall(ctx, p)
	return nil
}

// ProviderBinary opens a provider's executable for download.
func (h *Host) ProviderBinary(name string) (*os.File, error) {
	p := h.provider(name)
	if p == nil {
		return nil, &models.Error{Model: "plugin_providers", Key: name, Type: "GET", Code: http.StatusNotFound, Messages: []string{"Not Found"}}
	}
	f, err := os.Open(p.path)
	if err != nil {
		return nil, &models.Error{Model: "plugin_providers", Key: name, Type: "GET", Code: http.StatusNotFound, Messages: []string{err.Error()}}
	}
	return f, nil
}
