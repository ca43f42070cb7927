// Package schema compiles and applies the JSON Schemas that plugin
// providers ship: Param schemas (checked when an action's params are
// resolved) and StoreObjects schemas (checked on every write of a custom
// object type). Error texts follow the format DRP inherited from
// gojsonschema ("(root): Spotted is required", "Spotted: Invalid type.
// Expected: boolean, given: string") because DRP clients and tests match on
// them.
package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Validator checks JSON values against one compiled schema. The zero value
// is not usable; a nil *Validator accepts everything.
type Validator struct {
	sch *jsonschema.Schema
}

// Compile compiles a draft-4 JSON Schema given as decoded JSON (maps,
// slices, float64...). A nil or empty schema yields a Validator that accepts
// everything.
func Compile(doc any) (*Validator, error) {
	if doc == nil {
		return nil, nil
	}
	if m, ok := doc.(map[string]any); ok && len(m) == 0 {
		return nil, nil
	}
	norm, err := normalise(doc)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	const url = "mem:///schema.json"
	if err := c.AddResource(url, norm); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return &Validator{sch: sch}, nil
}

// CompileStoreObject compiles the value of one PluginProvider.StoreObjects
// entry. DRP accepts three forms: {} (anything goes), a full JSON Schema,
// and the per-field shorthand the incrementer uses,
// {"Spotted": {"type": "boolean", "isrequired": true}}, where each key is a
// field of the object and "isrequired" marks it mandatory. A document with
// a top-level "type", "properties", "$schema" or "required" key is taken as
// a full schema; anything else as the shorthand.
func CompileStoreObject(doc any) (*Validator, error) {
	m, ok := doc.(map[string]any)
	if doc == nil || (ok && len(m) == 0) {
		return nil, nil
	}
	if !ok {
		return nil, fmt.Errorf("schema: StoreObjects entry must be an object, got %T", doc)
	}
	for _, k := range []string{"type", "properties", "$schema", "required", "allOf", "anyOf", "oneOf"} {
		if _, full := m[k]; full {
			return Compile(m)
		}
	}
	props := map[string]any{}
	var required []any
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, field := range keys {
		fs, ok := m[field].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("schema: StoreObjects field %q must be an object, got %T", field, m[field])
		}
		clean := map[string]any{}
		for k, v := range fs {
			if k == "isrequired" {
				if b, _ := v.(bool); b {
					required = append(required, field)
				}
				continue
			}
			clean[k] = v
		}
		props[field] = clean
	}
	full := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		full["required"] = required
	}
	return Compile(full)
}

// StoreObjectFields returns the top-level fields of a StoreObjects entry
// that declare a single JSON type ("string", "boolean", "integer",
// "number", ...), in either the per-field shorthand or a full schema's
// "properties". The host derives the kind's indexes from them.
func StoreObjectFields(doc any) map[string]string {
	m, ok := doc.(map[string]any)
	if !ok || len(m) == 0 {
		return map[string]string{}
	}
	props := m
	for _, k := range []string{"type", "properties", "$schema", "required", "allOf", "anyOf", "oneOf"} {
		if _, full := m[k]; full {
			props, _ = m["properties"].(map[string]any)
			break
		}
	}
	out := map[string]string{}
	for field, v := range props {
		fs, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if t, ok := fs["type"].(string); ok && t != "" {
			out[field] = t
		}
	}
	return out
}

// Validate checks v (any JSON-representable value). The error, when not
// nil, is a *Error listing every problem in gojsonschema's format.
func (v *Validator) Validate(val any) error {
	if v == nil || v.sch == nil {
		return nil
	}
	norm, err := normalise(val)
	if err != nil {
		return &Error{Problems: []string{"(root): " + err.Error()}}
	}
	err = v.sch.Validate(norm)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Error{Problems: []string{"(root): " + err.Error()}}
	}
	var out []string
	collect(ve, &out)
	if len(out) == 0 {
		out = []string{"(root): " + ve.Error()}
	}
	return &Error{Problems: out}
}

// Error is a failed validation: one line per problem, each
// "<field>: <description>".
type Error struct {
	// Problems are the individual failures in document order.
	Problems []string
}

// Error joins the problems with "; ".
func (e *Error) Error() string { return strings.Join(e.Problems, "; ") }

// normalise round-trips through JSON so that Go values (structs, ints,
// typed maps) become the generic JSON form the validator expects, with
// numbers as json.Number so integers stay integers.
func normalise(v any) (any, error) {
	// Scalars, the usual action param, need no round trip: it would
	// return the same string (when valid UTF-8, which encoding replaces),
	// bool or nil, and a float64 as the json.Number of its encoding.
	switch x := v.(type) {
	case nil, bool:
		return x, nil
	case string:
		if utf8.ValidString(x) {
			return x, nil
		}
	case float64:
		buf, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return json.Number(buf), nil
	}
	buf, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

func collect(ve *jsonschema.ValidationError, out *[]string) {
	switch ve.ErrorKind.(type) {
	case *kind.Group, *kind.AllOf, *kind.Schema, *kind.Reference:
		for _, c := range ve.Causes {
			collect(c, out)
		}
		return
	}
	if len(ve.Causes) > 0 && isContainer(ve.ErrorKind) {
		for _, c := range ve.Causes {
			collect(c, out)
		}
		return
	}
	*out = append(*out, field(ve.InstanceLocation)+": "+describe(ve))
}

func isContainer(k jsonschema.ErrorKind) bool {
	switch k.(type) {
	case *kind.Group, *kind.AllOf, *kind.Schema, *kind.Reference:
		return true
	}
	return false
}

// field renders an instance location the way gojsonschema does: "(root)"
// or the dot-joined path.
func field(loc []string) string {
	if len(loc) == 0 {
		return "(root)"
	}
	return strings.Join(loc, ".")
}

func describe(ve *jsonschema.ValidationError) string {
	switch k := ve.ErrorKind.(type) {
	case *kind.Type:
		return fmt.Sprintf("Invalid type. Expected: %s, given: %s", strings.Join(k.Want, "/"), k.Got)
	case *kind.Required:
		msgs := make([]string, len(k.Missing))
		for i, m := range k.Missing {
			msgs[i] = m + " is required"
		}
		return strings.Join(msgs, ", ")
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			b, _ := json.Marshal(w)
			want[i] = string(b)
		}
		return "must be one of the following: " + strings.Join(want, ", ")
	case *kind.AdditionalProperties:
		return fmt.Sprintf("Additional property %s is not allowed", strings.Join(k.Properties, ", "))
	case *kind.MinLength:
		return fmt.Sprintf("String length must be greater than or equal to %d", k.Want)
	case *kind.MaxLength:
		return fmt.Sprintf("String length must be less than or equal to %d", k.Want)
	case *kind.Minimum:
		return fmt.Sprintf("Must be greater than or equal to %v", k.Want)
	case *kind.Maximum:
		return fmt.Sprintf("Must be less than or equal to %v", k.Want)
	case *kind.Pattern:
		return fmt.Sprintf("Does not match pattern '%s'", k.Want)
	}
	// Fall back to the library's own wording for rarer keywords.
	return ve.ErrorKind.LocalizedString(message.NewPrinter(language.English))
}
