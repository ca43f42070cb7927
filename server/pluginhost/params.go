package pluginhost

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/pluginhost/schema"
)

// schemaCache compiles each distinct param schema once.
type schemaCache struct {
	mu sync.Mutex
	m  map[string]*schema.Validator
}

func (c *schemaCache) get(doc any) (*schema.Validator, error) {
	buf, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	key := string(buf)
	c.mu.Lock()
	v, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err = schema.Compile(doc)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) > 4096 {
		c.m = map[string]*schema.Validator{}
	}
	c.m[key] = v
	c.mu.Unlock()
	return v, nil
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
	v, err := h.schemas.get(def.Schema)
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
