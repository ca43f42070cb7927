// Package contentlayer stores content bundles as read-only layers of the
// object service, as DRP shows content: every object of a bundle is saved
// with ReadOnly true and Bundle set to the bundle's name, so the API
// refuses changes to it (403 naming the bundle) and only the layer's owner,
// writing through objects.AllowReadOnly, can replace or remove it.
//
// The server loads its base content (provision-base) this way and the
// plugin host loads each provider's content pack.
package contentlayer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/objects"
)

// Clash says what Add does with a writable (user) object stored under the
// same prefix/key as an object of the layer.
type Clash int

const (
	// RefuseWritable fails with a 409 naming the clashing objects and
	// changes nothing.
	RefuseWritable Clash = iota
	// ReplaceWritable replaces the user objects with the layer's.
	ReplaceWritable
	// KeepWritable keeps the user objects (they win over the layer's,
	// which are skipped and logged) and stores the rest of the layer.
	KeepWritable
)

// Loader adds and removes content layers on an object service.
type Loader struct {
	objs      *objects.Service
	principal string
	log       *slog.Logger
}

// New returns a Loader that writes as principal.
func New(objs *objects.Service, principal string, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.Default()
	}
	return &Loader{objs: objs, principal: principal, log: log}
}

// layerFields reads the content-layer marks of any object.
func layerFields(obj models.Model) (bundle string, readOnly bool) {
	if r, ok := obj.(*models.RawModel); ok {
		bundle, _ = (*r)["Bundle"].(string)
		readOnly, _ = (*r)["ReadOnly"].(bool)
		return bundle, readOnly
	}
	var probe struct {
		Bundle   string
		ReadOnly bool
	}
	_ = models.Remarshal(obj, &probe)
	return probe.Bundle, probe.ReadOnly
}

type layerItem struct {
	prefix string
	obj    models.Model
	old    models.Model // what was stored under the key before, nil if nothing
}

// Error reports a bundle that cannot be loaded, in DRP's words ("bad
// store"). model is the collection the bundle came from (e.g.
// "plugin_providers", "contents").
func Error(model, bundle string, code int, msg string) *models.Error {
	return &models.Error{Model: model, Key: bundle, Type: "STORE_ERROR", Code: code,
		Messages: []string{fmt.Sprintf("bad store: content layer of %s: %s", bundle, msg)}}
}

// Add adds or replaces the layer named bundle with the objects of c. Objects
// of an older version of the layer that c no longer has are deleted. An
// object stored by another layer is always a 409; a writable object is
// handled as clash says. Saving is all or nothing: when an object is
// rejected part-way, the ones already saved are put back as they were.
// Sections for object types the service does not have are skipped (and
// logged). model names the collection errors are reported against.
func (l *Loader) Add(ctx context.Context, model, bundle string, c *models.Content, clash Clash) error {
	wctx := objects.AllowReadOnly(ctx)
	var items []layerItem
	var clashes []string
	prefixes := make([]string, 0, len(c.Sections))
	for p := range c.Sections {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)
	keep := map[string]bool{}
	for _, prefix := range prefixes {
		if _, ok := l.objs.Kind(prefix); !ok {
			l.log.Warn("content section skipped: no such object type", "bundle", bundle, "section", prefix)
			continue
		}
		keys := make([]string, 0, len(c.Sections[prefix]))
		for k := range c.Sections[prefix] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, key := range keys {
			obj, err := l.decode(prefix, key, bundle, c.Sections[prefix][key])
			if err != nil {
				return Error(model, bundle, http.StatusUnprocessableEntity, fmt.Sprintf("%s/%s: %v", prefix, key, err))
			}
			it := layerItem{prefix: prefix, obj: obj}
			if old, err := l.objs.Get(ctx, prefix, obj.Key()); err == nil {
				it.old = old
				b, ro := layerFields(old)
				switch {
				case ro && b != bundle:
					return &models.Error{Model: prefix, Key: obj.Key(), Type: "STORE_ERROR", Code: http.StatusConflict,
						Messages: []string{fmt.Sprintf("%s/%s already belongs to content bundle %s", prefix, obj.Key(), b)}}
				case !ro && clash == KeepWritable:
					l.log.Info("content object skipped: a writable object of that name exists and is kept", "bundle", bundle, "object", prefix+"/"+obj.Key())
					continue
				case !ro:
					clashes = append(clashes, prefix+"/"+obj.Key())
				}
			}
			keep[prefix+"/"+obj.Key()] = true
			items = append(items, it)
		}
	}
	if len(clashes) > 0 && clash != ReplaceWritable {
		// DRP deletes such user objects silently; refuse instead.
		return &models.Error{Model: model, Key: bundle, Type: "STORE_ERROR", Code: http.StatusConflict,
			Messages: []string{fmt.Sprintf("content would replace writable objects %s; retry with replaceWritable=true to replace them",
				strings.Join(clashes, ", "))}}
	}
	for i, it := range items {
		if _, err := l.objs.Save(wctx, l.principal, it.prefix, it.obj); err != nil {
			// Roll back even when ctx has ended (SIGTERM during
			// discovery): with ctx the rollback would fail too and
			// leave half a layer behind.
			cctx, cancel := cleanupContext(wctx)
			l.rollback(cctx, bundle, items[:i])
			cancel()
			return Error(model, bundle, http.StatusUnprocessableEntity, fmt.Sprintf("%s/%s: %v", it.prefix, it.obj.Key(), err))
		}
	}
	// Every object is saved: finish the replacement (drop what the new
	// version no longer has) even if ctx ends now.
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	l.RemoveWhere(cctx, func(b string) bool { return b == bundle }, keep)
	return nil
}

// CleanupTimeout bounds a rollback or the removal of a replaced layer's
// leftovers. Both run on a context detached from the caller's (keeping its
// values), so that a caller giving up part-way never leaves a half-stored
// layer, but they cannot run forever either.
const CleanupTimeout = 30 * time.Second

func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
}

// decode turns one bundle object into a model marked as part of bundle,
// filling its key field from its key in the bundle when it lacks one.
func (l *Loader) decode(prefix, key, bundle string, raw any) (models.Model, error) {
	fields := map[string]any{}
	if err := models.Remarshal(raw, &fields); err != nil {
		return nil, err
	}
	fields["Bundle"] = bundle
	fields["ReadOnly"] = true
	buf, _ := json.Marshal(fields)
	obj, err := l.objs.DecodeBody("PUT", prefix, buf)
	if err != nil {
		return nil, err
	}
	if obj.Key() != "" {
		return obj, nil
	}
	k, _ := l.objs.Kind(prefix)
	fields[k.KeyField] = key
	buf, _ = json.Marshal(fields)
	return l.objs.DecodeBody("PUT", prefix, buf)
}

// rollback puts back what saved replaced, newest first: objects that did
// not exist before are deleted, replaced ones restored. wctx must allow
// read-only writes and should not be the (possibly ended) caller's.
func (l *Loader) rollback(wctx context.Context, bundle string, saved []layerItem) {
	for i := len(saved) - 1; i >= 0; i-- {
		it := saved[i]
		var err error
		if it.old == nil {
			_, err = l.objs.Delete(wctx, l.principal, it.prefix, it.obj.Key())
		} else {
			_, err = l.objs.Save(wctx, l.principal, it.prefix, it.old)
		}
		if err != nil {
			l.log.Error("roll back content object", "bundle", bundle, "object", it.prefix+"/"+it.obj.Key(), "err", err)
		}
	}
}

// Remove deletes every object of the layer named bundle; a missing layer
// is not an error.
func (l *Loader) Remove(ctx context.Context, bundle string) {
	l.RemoveWhere(ctx, func(b string) bool { return b == bundle }, nil)
}

// RemoveWhere deletes the layer objects (ReadOnly, with a Bundle) whose
// bundle matches and whose prefix/key is not in keep. plugin_providers
// records are never touched.
func (l *Loader) RemoveWhere(ctx context.Context, match func(bundle string) bool, keep map[string]bool) {
	wctx := objects.AllowReadOnly(ctx)
	for _, ref := range l.objs.ReadOnlyObjects(match) {
		if ref.Prefix == "plugin_providers" || keep[ref.Prefix+"/"+ref.Key] {
			continue
		}
		if _, err := l.objs.Delete(wctx, l.principal, ref.Prefix, ref.Key); err != nil {
			l.log.Warn("remove content object", "bundle", ref.Bundle, "object", ref.Prefix+"/"+ref.Key, "err", err)
		}
	}
}
