package pluginhost

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/pluginhost/schema"
)

// schemaCache compiles each param's schema once. Entries are keyed by the
// param's name and hold the schema document they were compiled from; a
// lookup compares the document it is given with that one (sameJSON, which
// allocates nothing) and recompiles only when the param's schema changed.
// Marshalling the schema to find its entry, as before, cost an encoding of
// the whole schema per param per action.
type schemaCache struct {
	mu sync.RWMutex
	m  map[string]schemaEntry
}

// schemaEntry is one compiled param schema and the document it came from.
type schemaEntry struct {
	doc any
	v   *schema.Validator
}

// maxSchemaCache bounds the cache (params with a schema); past it the
// cache starts over.
const maxSchemaCache = 4096

func (c *schemaCache) get(name string, doc any) (*schema.Validator, error) {
	c.mu.RLock()
	e, ok := c.m[name]
	c.mu.RUnlock()
	if ok && sameJSON(e.doc, doc) {
		return e.v, nil
	}
	v, err := schema.Compile(doc)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxSchemaCache {
		c.m = map[string]schemaEntry{}
	}
	c.m[name] = schemaEntry{doc: doc, v: v}
	c.mu.Unlock()
	return v, nil
}

// sameJSON reports whether a and b are the same decoded JSON document
// (maps, slices, strings, float64, bool, nil as encoding/json produces,
// plus json.Number). Any other type is not compared and reports false,
// so the caller recompiles: correct, only slower.
func sameJSON(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		return ok && x == y
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !sameJSON(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// checkValue validates value against the schema of the param named name,
// if such a param exists.
func (h *Host) checkValue(ctx context.Context, name string, value any) error {
	def, ok, err := h.deps.Params.ParamDef(ctx, name)
	if err != nil {
		return fmt.Errorf("look up param %s: %w", name, err)
	}
	if !ok {
		def = nil
	}
	return h.checkAgainst(name, def, value)
}

// checkAgainst validates value against def's schema (nil def: anything).
func (h *Host) checkAgainst(name string, def *models.Param, value any) error {
	if def == nil || def.Schema == nil {
		return nil
	}
	v, err := h.schemas.get(name, def.Schema)
	if err != nil {
		return fmt.Errorf("param %s has an invalid schema: %w", name, err)
	}
	return v.Validate(value)
}

// paramLookup memoises param lookups for one request: the target's
// aggregated params are read once, and each param definition once.
type paramLookup struct {
	h    *Host
	obj  models.Model
	agg  map[string]any
	defs map[string]*models.Param
}

func (h *Host) newLookup(obj models.Model) *paramLookup {
	return &paramLookup{h: h, obj: obj, defs: map[string]*models.Param{}}
}

// value returns the aggregated value of name (object, profiles, global).
func (l *paramLookup) value(ctx context.Context, name string) (any, bool, error) {
	if l.agg == nil {
		agg, err := l.h.deps.Params.AggregateParams(ctx, l.obj)
		if err != nil {
			return nil, false, fmt.Errorf("resolve params: %w", err)
		}
		if agg == nil {
			agg = map[string]any{}
		}
		l.agg = agg
	}
	v, ok := l.agg[name]
	return v, ok, nil
}

// def returns the definition of name, nil when there is none.
func (l *paramLookup) def(ctx context.Context, name string) (*models.Param, error) {
	if d, ok := l.defs[name]; ok {
		return d, nil
	}
	d, ok, err := l.h.deps.Params.ParamDef(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("look up param %s: %w", name, err)
	}
	if !ok {
		d = nil
	}
	l.defs[name] = d
	return d, nil
}

// checkPluginParams implements §7.2: required provider params must be in
// the Plugin's own Params (no profile/global fallback), and present values
// must satisfy their schemas. It returns the decrypted params to send on
// /config, or the errors that keep the plugin from starting.
func (h *Host) checkPluginParams(ctx context.Context, prov *provider, spec *models.Plugin) (map[string]any, []string) {
	params, err := h.deps.Params.OwnParams(ctx, spec)
	if err != nil {
		return nil, []string{fmt.Sprintf("Cannot read params: %v", err)}
	}
	var errs []string
	for _, name := range prov.def.RequiredParams {
		if _, ok := params[name]; !ok {
			errs = append(errs, "Missing required parameter: "+name)
		}
	}
	for _, list := range [][]string{prov.def.RequiredParams, prov.def.OptionalParams} {
		for _, name := range list {
			v, ok := params[name]
			if !ok {
				continue
			}
			if err := h.checkValue(ctx, name, v); err != nil {
				errs = append(errs, fmt.Sprintf("Invalid parameter %s: %v", name, err))
			}
		}
	}
	return params, errs
}
