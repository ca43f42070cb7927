package objects

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/google/uuid"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/paramschema"
	"github.com/provisionhq/provision/server/secrets"
)

// GlobalProfile is the profile consulted last for every object's params.
const GlobalProfile = "global"

// paramDefLocked returns a copy of the param definition called name.
func (s *Service) paramDefLocked(name string) (*models.Param, bool) {
	k, ok := s.kinds["params"]
	if !ok {
		return nil, false
	}
	e, ok := s.data["params"][name]
	if !ok {
		return nil, false
	}
	p, ok := s.decodeEntry(k, e).(*models.Param)
	return p, ok
}

// paramDefShared returns the cached param definition called name, which
// the caller must only read (no copy: checked on every param of every
// write and every param lookup).
func (s *Service) paramDefShared(name string) (*models.Param, bool) {
	e, ok := s.data["params"][name]
	if !ok {
		return nil, false
	}
	p, ok := e.obj.(*models.Param)
	return p, ok
}

func (s *Service) isSecureLocked(name string) bool {
	e, ok := s.data["params"][name]
	if !ok {
		return false
	}
	sec, _ := e.fields["Secure"].(bool)
	return sec
}

// ParamError is a param value that its definition rejects.
type ParamError struct {
	// Name is the param.
	Name string
	// Messages are the schema messages.
	Messages []string
}

// Error renders "Invalid Parameter: <name>: <schema messages>".
func (e *ParamError) Error() string {
	return fmt.Sprintf("Invalid Parameter: %s: %s", e.Name, strings.Join(e.Messages, "; "))
}

// ValidateParam checks a plain value of param name against its definition's
// schema (no definition: anything goes). It returns a *ParamError when the
// value does not conform.
func (s *Service) ValidateParam(name string, value any) error {
	s.mu.RLock()
	def, ok := s.paramDefShared(name)
	s.mu.RUnlock()
	if !ok {
		return nil
	}
	return s.validateAgainst(def, value)
}

func (s *Service) validateAgainst(def *models.Param, value any) error {
	err := s.schemas.Validate(def.Schema, value)
	if err == nil {
		return nil
	}
	var se *paramschema.Error
	if errors.As(err, &se) {
		return &ParamError{Name: def.Name, Messages: se.Messages}
	}
	return &ParamError{Name: def.Name, Messages: []string{err.Error()}}
}

// checkParams validates every value of params against its definition and
// seals secure values in place. A sealed value equal to the old stored one
// is kept as is. Caller holds the lock.
func (s *Service) checkParams(params, old map[string]any) error {
	for name, val := range params {
		if len(name) > s.limits.MaxNameBytes {
			return fmt.Errorf("param name %q is %d bytes long, more than the limit of %d bytes (%s)",
				shortKey(name), len(name), s.limits.MaxNameBytes, nameBytesFlag)
		}
		if !models.ParamNameRE.MatchString(name) {
			return fmt.Errorf("Invalid param name %q", name)
		}
		def, ok := s.paramDefShared(name)
		if !ok {
			continue
		}
		if !def.Secure {
			if err := s.validateAgainst(def, val); err != nil {
				return err
			}
			continue
		}
		if sd, isSealed := secrets.AsSecureData(val); isSealed {
			if ov, had := old[name]; had && reflect.DeepEqual(ov, val) {
				continue
			}
			plain, err := s.keys.Open(sd)
			if err != nil {
				return fmt.Errorf("param %s: %w; seal it to the key from GET .../pubkey or send it in plain text over HTTPS", name, err)
			}
			val = plain
		}
		if err := s.validateAgainst(def, val); err != nil {
			return err
		}
		sealed, err := s.keys.Seal(val)
		if err != nil {
			return fmt.Errorf("param %s: %w", name, err)
		}
		params[name] = secrets.ToJSONValue(sealed)
	}
	return nil
}

// ParamOptions select how params are resolved.
type ParamOptions struct {
	// Aggregate merges the object's params with its profiles' (in order) and
	// the global profile's; the object's own values win.
	Aggregate bool
	// Decode opens secure params; otherwise they are returned sealed.
	Decode bool
	// Defaults falls back to the param definition's schema default when a
	// single param is not set anywhere (GetParam only).
	Defaults bool
	// Compose (with Aggregate) merges values found at several levels
	// instead of taking the first: maps merge key by key (recursively, the
	// more specific level winning a conflict) and arrays concatenate, the
	// more specific level's entries first. Values of different kinds, and
	// secure params, are not composed: the most specific wins.
	Compose bool
}

// copyValue deep-copies a decoded JSON value (maps and slices; scalars
// are immutable), so a caller cannot change the cached object through it.
func copyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = copyValue(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = copyValue(x)
		}
		return out
	}
	return v
}

// composeValues merges lower (a less specific level's value) into higher.
func composeValues(higher, lower any) any {
	switch h := higher.(type) {
	case map[string]any:
		l, ok := lower.(map[string]any)
		if !ok {
			return higher
		}
		out := make(map[string]any, len(h)+len(l))
		for k, v := range l {
			out[k] = v
		}
		for k, v := range h {
			if lv, both := l[k]; both {
				v = composeValues(v, lv)
			}
			out[k] = v
		}
		return out
	case []any:
		l, ok := lower.([]any)
		if !ok {
			return higher
		}
		out := make([]any, 0, len(h)+len(l))
		return append(append(out, h...), l...)
	}
	return higher
}

// paramSources returns the Params maps consulted for obj in precedence
// order. Caller holds the lock.
func (s *Service) paramSources(obj models.Model, aggregate bool) []map[string]any {
	var out []map[string]any
	if pm, ok := obj.(models.Paramer); ok {
		out = append(out, pm.GetParams())
	}
	if !aggregate {
		return out
	}
	seen := map[string]bool{}
	if p, ok := obj.(*models.Profile); ok {
		seen[p.Name] = true
	}
	profKind := s.kinds["profiles"]
	var walk func(names []string)
	walk = func(names []string) {
		for _, n := range names {
			if seen[n] || profKind == nil {
				continue
			}
			seen[n] = true
			e, ok := s.data["profiles"][n]
			if !ok {
				continue
			}
			p, ok := e.obj.(*models.Profile) // read only: no copy
			if !ok {
				continue
			}
			out = append(out, p.Params)
			walk(p.Profiles)
		}
	}
	if pr, ok := obj.(models.Profiler); ok {
		walk(pr.GetProfiles())
	}
	walk([]string{GlobalProfile})
	return out
}

func (s *Service) findForParams(method, prefix, id string) (*Kind, models.Model, error) {
	k, err := s.kindLocked(method, prefix)
	if err != nil {
		return nil, nil, err
	}
	e, ok := s.lookup(k, id)
	if !ok {
		return nil, nil, notFound(method, prefix, id)
	}
	obj := e.obj // read only: callers copy what they return
	if _, ok := obj.(models.Paramer); !ok || k.NoParams {
		return nil, nil, &models.Error{Model: prefix, Key: id, Type: method, Code: 404, Messages: []string{prefix + " do not have params"}}
	}
	return k, obj, nil
}

// GetParams returns the params of the object with key or <Index>:<value> id.
// With Decode, secure params are opened: this is the function the plugin
// host uses to hand decrypted params to a plugin.
func (s *Service) GetParams(ctx context.Context, prefix, id string, o ParamOptions) (map[string]any, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, obj, err := s.findForParams("GET", prefix, id)
	if err != nil {
		return nil, err
	}
	res := map[string]any{}
	srcs := s.paramSources(obj, o.Aggregate)
	for i := len(srcs) - 1; i >= 0; i-- {
		for k, v := range srcs[i] {
			if prev, ok := res[k]; ok && o.Compose && o.Aggregate && !s.isSecureLocked(k) {
				v = composeValues(v, prev)
			}
			res[k] = v
		}
	}
	for k, v := range res {
		res[k] = copyValue(v) // the sources are the cache's own objects
	}
	if o.Decode {
		if err := s.decodeParams(res); err != nil {
			return nil, &models.Error{Model: prefix, Key: id, Type: "GET", Code: 500, Messages: []string{err.Error()}}
		}
	}
	return res, nil
}

// GetParam returns one param (and whether it was found) of the object with
// key or <Index>:<value> id.
func (s *Service) GetParam(ctx context.Context, prefix, id, name string, o ParamOptions) (any, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, obj, err := s.findForParams("GET", prefix, id)
	if err != nil {
		return nil, false, err
	}
	var val any
	found := false
	compose := o.Compose && o.Aggregate && !s.isSecureLocked(name)
	for _, src := range s.paramSources(obj, o.Aggregate) {
		if v, ok := src[name]; ok {
			if !found {
				val, found = v, true
				if !compose {
					break
				}
				continue
			}
			val = composeValues(val, v)
		}
	}
	if o.Defaults && (!found || compose) {
		if def, ok := s.paramDefShared(name); ok {
			if d, has := def.DefaultValue(); has {
				if found {
					// The default is the least specific level.
					val = composeValues(val, d)
				} else {
					val, found = d, true
				}
			}
		}
	}
	val = copyValue(val) // the sources are the cache's own objects
	if found && o.Decode {
		m := map[string]any{name: val}
		if err := s.decodeParams(m); err != nil {
			return nil, false, &models.Error{Model: prefix, Key: id, Type: "GET", Code: 500, Messages: []string{err.Error()}}
		}
		val = m[name]
	}
	return val, found, nil
}

// ResolveParams returns the values of names for the object, each resolved
// over the object's params, its profiles, the global profile and finally
// the definition's default, decrypted. Missing names are left out.
func (s *Service) ResolveParams(ctx context.Context, prefix, id string, names []string) (map[string]any, error) {
	out := map[string]any{}
	for _, n := range names {
		v, ok, err := s.GetParam(ctx, prefix, id, n, ParamOptions{Aggregate: true, Decode: true, Defaults: true})
		if err != nil {
			return nil, err
		}
		if ok {
			out[n] = v
		}
	}
	return out, nil
}

// updateParams runs fn on a copy of the object's params and saves the
// result with action "save"; it returns the new params.
func (s *Service) updateParams(ctx context.Context, method, principal, prefix, id string, fn func(p map[string]any) error) (map[string]any, error) {
	res, err := s.write(ctx, method, prefix, ActionSave, principal, func(k *Kind) (*entry, models.Model, error) {
		old, ok := s.lookup(k, id)
		if !ok {
			return nil, nil, notFound(method, prefix, id)
		}
		obj := s.decodeEntry(k, old)
		pm, ok := obj.(models.Paramer)
		if !ok || k.NoParams {
			return nil, nil, &models.Error{Model: prefix, Key: id, Type: method, Code: 404, Messages: []string{prefix + " do not have params"}}
		}
		p := pm.GetParams()
		if p == nil {
			p = map[string]any{}
		}
		if err := fn(p); err != nil {
			return nil, nil, asModelError(err, method, 422, prefix, old.key)
		}
		pm.SetParams(p)
		return old, obj, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(models.Paramer).GetParams(), nil
}

// SetParams replaces all params of an object (POST .../params).
func (s *Service) SetParams(ctx context.Context, principal, prefix, id string, params map[string]any) (map[string]any, error) {
	return s.updateParams(ctx, "POST", principal, prefix, id, func(p map[string]any) error {
		for k := range p {
			delete(p, k)
		}
		for k, v := range params {
			p[k] = v
		}
		return nil
	})
}

// SetParam sets one param of an object (POST .../params/<name>).
func (s *Service) SetParam(ctx context.Context, principal, prefix, id, name string, value any) (map[string]any, error) {
	return s.updateParams(ctx, "POST", principal, prefix, id, func(p map[string]any) error {
		p[name] = value
		return nil
	})
}

// DeleteParam removes one param and returns its old value (JSON null when
// it was not set).
func (s *Service) DeleteParam(ctx context.Context, principal, prefix, id, name string) (any, error) {
	var old any
	_, err := s.updateParams(ctx, "DELETE", principal, prefix, id, func(p map[string]any) error {
		old = p[name]
		delete(p, name)
		return nil
	})
	return old, err
}

// PatchParams applies an RFC 6902 patch to an object's params map.
func (s *Service) PatchParams(ctx context.Context, principal, prefix, id string, patch jsonpatch2.Patch) (map[string]any, error) {
	return s.updateParams(ctx, "PATCH", principal, prefix, id, func(p map[string]any) error {
		base, err := json.Marshal(p)
		if err != nil {
			return err
		}
		out, perr := applyPatch(prefix, id, patch, base, s.limits)
		if perr != nil {
			return perr
		}
		next := map[string]any{}
		if err := json.Unmarshal(out, &next); err != nil || next == nil {
			return &models.Error{Type: "PATCH", Code: 422, Messages: []string{"patched params are not a JSON object"}}
		}
		for k := range p {
			delete(p, k)
		}
		for k, v := range next {
			p[k] = v
		}
		return nil
	})
}

// Patch applies an RFC 6902 patch to the API form of an object (as GET
// shows it; hidden fields are carried over) and stores the result.
func (s *Service) Patch(ctx context.Context, principal, prefix, id string, patch jsonpatch2.Patch) (models.Model, error) {
	return s.write(ctx, "PATCH", prefix, ActionUpdate, principal, func(k *Kind) (*entry, models.Model, error) {
		old, ok := s.lookup(k, id)
		if !ok {
			return nil, nil, notFound("PATCH", prefix, id)
		}
		patch, perr := wholeDocumentTests(k, prefix, old.key, patch, old.view)
		if perr != nil {
			return nil, nil, perr
		}
		out, perr := applyPatch(prefix, old.key, patch, old.view, s.limits)
		if perr != nil {
			return nil, nil, perr
		}
		obj, err := s.decodeStrict(k, out)
		if err != nil {
			return nil, nil, &models.Error{Model: prefix, Key: old.key, Type: "PATCH", Code: 422, Messages: []string{err.Error()}}
		}
		return old, obj, nil
	})
}

// wholeDocumentTests checks and removes the leading "test" operations of
// patch whose path is "" (the whole document), which DRP's client prepends
// in ParanoidPatch mode (drpcli update --ref): a test of the object exactly
// as the client holds it. For typed kinds the client's copy went through
// DRP's own struct, which has fields provisiond does not store (and may
// lack some it does), so only the top-level fields both documents carry
// are compared, each for exact equality: a field only one side knows
// cannot be what changed under the client. Other kinds (RawModel) are
// compared as a whole, as RFC 6902 says.
func wholeDocumentTests(k *Kind, prefix, key string, patch jsonpatch2.Patch, view []byte) (jsonpatch2.Patch, *models.Error) {
	if _, raw := k.newObject().(*models.RawModel); raw {
		return patch, nil
	}
	var cur map[string]any
	for len(patch) > 0 && patch[0].Op == "test" && patch[0].Path == "" {
		if cur == nil {
			if err := json.Unmarshal(view, &cur); err != nil {
				return nil, &models.Error{Model: prefix, Key: key, Type: "PATCH", Code: 500, Messages: []string{"stored object: " + err.Error()}}
			}
		}
		var want map[string]any
		buf, err := json.Marshal(patch[0].Value)
		if err == nil {
			err = json.Unmarshal(buf, &want)
		}
		fail := &models.Error{Model: prefix, Key: key, Type: "PATCH", Code: 409,
			Messages: []string{"Patch error at line 0 (test ): Test op failed."}}
		if err != nil || want == nil {
			return nil, fail
		}
		for f, v := range cur {
			if w, ok := want[f]; ok && !reflect.DeepEqual(v, w) {
				fail.Messages[0] = fmt.Sprintf("Patch error at line 0 (test ): Test op failed: field %s changed", f)
				return nil, fail
			}
		}
		patch = patch[1:]
	}
	return patch, nil
}

// decodeStrict decodes buf into a new object of k, refusing unknown
// top-level fields of typed kinds.
func (s *Service) decodeStrict(k *Kind, buf []byte) (models.Model, error) {
	obj := k.newObject()
	if _, raw := obj.(*models.RawModel); !raw {
		buf = dropEmptyUUIDs(obj, buf)
		dec := json.NewDecoder(strings.NewReader(string(buf)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				return nil, fmt.Errorf("%s have no field %s: patch only the fields a GET shows", k.Prefix, field)
			}
			return nil, fmt.Errorf("the patched object is not a valid %s object: %v", k.Prefix, err)
		}
		return obj, nil
	}
	if err := json.Unmarshal(buf, obj); err != nil {
		return nil, fmt.Errorf("the patched object is not a valid %s object: %v", k.Prefix, err)
	}
	return obj, nil
}

// DecodeBody decodes a request body into a new object of the kind (lenient:
// unknown fields are ignored, as DRP does).
func (s *Service) DecodeBody(method, prefix string, body []byte) (models.Model, error) {
	s.mu.RLock()
	k, err := s.kindLocked(method, prefix)
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	trimmed := strings.TrimSpace(string(body))
	if !strings.HasPrefix(trimmed, "{") {
		return nil, &models.Error{Model: prefix, Type: method, Code: 400, Messages: []string{"body must be a JSON object"}}
	}
	obj := k.newObject()
	if err := json.Unmarshal(dropEmptyUUIDs(obj, body), obj); err != nil {
		return nil, &models.Error{Model: prefix, Type: method, Code: 400, Messages: []string{"Invalid JSON: " + err.Error()}}
	}
	return obj, nil
}

// dropEmptyUUIDs removes the top-level members of a JSON object that hold
// "" for a UUID field of obj's type, so they decode as the zero UUID. DRP's
// client (pborman/uuid) sends an unset UUID as "", which google/uuid
// refuses: drpcli `machines create '{"Name":"m1"}'` posts "Uuid":"" and
// "CurrentJob":"". Field names match case-insensitively, as in
// encoding/json. Anything else is returned unchanged.
func dropEmptyUUIDs(obj any, body []byte) []byte {
	if !bytes.Contains(body, []byte(`""`)) {
		return body
	}
	t := reflect.TypeOf(obj)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return body
	}
	var fields []string
	uuidType := reflect.TypeFor[uuid.UUID]()
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.Type == uuidType && f.IsExported() {
			fields = append(fields, f.Name)
		}
	}
	if len(fields) == 0 {
		return body
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	changed := false
	for k, v := range m {
		if string(bytes.TrimSpace(v)) != `""` {
			continue
		}
		for _, f := range fields {
			if strings.EqualFold(k, f) {
				delete(m, k)
				changed = true
			}
		}
	}
	if !changed {
		return body
	}
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
}
