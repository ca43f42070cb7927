// Package paramschema validates param values against the JSON Schema of
// their param definition, using santhosh-tekuri/jsonschema, and words the
// failures the way DRP (gojsonschema) does, e.g.
// "(root): Invalid type. Expected: integer, given: string", because clients
// and plugins written for DRP show or match those messages.
package paramschema

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// maxCached bounds the compiled-schema cache.
const maxCached = 4096

// Error is a failed validation: one DRP-style line per problem.
type Error struct {
	// Messages are lines like "(root): Invalid type. Expected: integer, given: string".
	Messages []string
}

// Error joins the messages.
func (e *Error) Error() string { return strings.Join(e.Messages, "; ") }

// Validator compiles and caches schemas. It is safe for concurrent use.
type Validator struct {
	mu    sync.Mutex
	cache map[string]*jsonschema.Schema
}

// New returns an empty Validator.
func New() *Validator { return &Validator{cache: map[string]*jsonschema.Schema{}} }

// IsEmpty reports whether schema accepts everything without looking
// (nil, true or an empty object), so callers can skip validation.
func IsEmpty(schema any) bool {
	switch s := schema.(type) {
	case nil:
		return true
	case bool:
		return s
	case map[string]any:
		return len(s) == 0
	}
	return false
}

// Compile checks that schema is a usable JSON Schema and returns it compiled.
// Remote references are refused so that validation never touches the network.
func (v *Validator) Compile(schema any) (*jsonschema.Schema, error) {
	buf, err := json.Marshal(schema)
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	key := string(buf)
	v.mu.Lock()
	if s, ok := v.cache[key]; ok {
		v.mu.Unlock()
		return s, nil
	}
	v.mu.Unlock()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(key))
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.UseLoader(jsonschema.SchemeURLLoader{})
	if err := c.AddResource("param.json", doc); err != nil {
		return nil, fmt.Errorf("invalid schema: %w", err)
	}
	s, err := c.Compile("param.json")
	if err != nil {
		return nil, fmt.Errorf("invalid schema: %s", compileMessage(err))
	}
	v.mu.Lock()
	if len(v.cache) >= maxCached {
		v.cache = map[string]*jsonschema.Schema{}
	}
	v.cache[key] = s
	v.mu.Unlock()
	return s, nil
}

func compileMessage(err error) string {
	var se *jsonschema.SchemaValidationError
	if errors.As(err, &se) && se.Err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(se.Err, &ve) {
			return strings.Join(Format(ve, nil), "; ")
		}
	}
	return err.Error()
}

// Validate checks value against schema. It returns a *Error with DRP-style
// messages when the value does not conform, or another error when the schema
// itself is unusable.
func (v *Validator) Validate(schema, value any) error {
	if IsEmpty(schema) {
		return nil
	}
	s, err := v.Compile(schema)
	if err != nil {
		return err
	}
	if err := s.Validate(value); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return &Error{Messages: Format(ve, value)}
		}
		return &Error{Messages: []string{err.Error()}}
	}
	return nil
}

// Format flattens a validation error tree into gojsonschema-style lines.
// value is the validated instance (used to tell integers from numbers, as
// gojsonschema does); it may be nil.
func Format(ve *jsonschema.ValidationError, value any) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			switch e.ErrorKind.(type) {
			case *kind.AnyOf, *kind.OneOf, *kind.AllOf, *kind.Not:
				// gojsonschema reports the combinator itself, not each branch.
				if msg := describe(e, value); msg != "" && !seen[msg] {
					seen[msg] = true
					out = append(out, msg)
				}
				return
			}
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		if msg := describe(e, value); msg != "" && !seen[msg] {
			seen[msg] = true
			out = append(out, msg)
		}
	}
	walk(ve)
	if len(out) == 0 {
		out = append(out, "(root): "+ve.Error())
	}
	return out
}

func field(loc []string) string {
	if len(loc) == 0 {
		return "(root)"
	}
	return strings.Join(loc, ".")
}

func describe(e *jsonschema.ValidationError, value any) string {
	f := field(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Group, *kind.Schema, *kind.Reference:
		return ""
	case *kind.Type:
		given := k.Got
		if given == "number" {
			if n, ok := at(value, e.InstanceLocation); ok && isInteger(n) {
				given = "integer"
			}
		}
		return fmt.Sprintf("%s: Invalid type. Expected: %s, given: %s", f, strings.Join(k.Want, "/"), given)
	case *kind.Required:
		var lines []string
		for _, m := range k.Missing {
			lines = append(lines, fmt.Sprintf("%s: %s is required", f, m))
		}
		return strings.Join(lines, "\n")
	case *kind.Enum:
		var want []string
		for _, w := range k.Want {
			want = append(want, display(w))
		}
		return fmt.Sprintf("%s: %s must be one of the following: %s", f, f, strings.Join(want, ", "))
	case *kind.Const:
		return fmt.Sprintf("%s: %s does not match: %s", f, f, display(k.Want))
	case *kind.AdditionalProperties:
		props := append([]string{}, k.Properties...)
		sort.Strings(props)
		var lines []string
		for _, p := range props {
			lines = append(lines, fmt.Sprintf("%s: Additional property %s is not allowed", f, p))
		}
		return strings.Join(lines, "\n")
	case *kind.Minimum:
		return fmt.Sprintf("%s: Must be greater than or equal to %s", f, rat(k.Want))
	case *kind.Maximum:
		return fmt.Sprintf("%s: Must be less than or equal to %s", f, rat(k.Want))
	case *kind.ExclusiveMinimum:
		return fmt.Sprintf("%s: Must be greater than %s", f, rat(k.Want))
	case *kind.ExclusiveMaximum:
		return fmt.Sprintf("%s: Must be less than %s", f, rat(k.Want))
	case *kind.MultipleOf:
		return fmt.Sprintf("%s: Must be a multiple of %s", f, rat(k.Want))
	case *kind.MinLength:
		return fmt.Sprintf("%s: String length must be greater than or equal to %d", f, k.Want)
	case *kind.MaxLength:
		return fmt.Sprintf("%s: String length must be less than or equal to %d", f, k.Want)
	case *kind.Pattern:
		return fmt.Sprintf("%s: Does not match pattern '%s'", f, k.Want)
	case *kind.Format:
		return fmt.Sprintf("%s: Does not match format '%s'", f, k.Want)
	case *kind.MinItems:
		return fmt.Sprintf("%s: Array must have at least %d items", f, k.Want)
	case *kind.MaxItems:
		return fmt.Sprintf("%s: Array must have at most %d items", f, k.Want)
	case *kind.UniqueItems:
		return fmt.Sprintf("%s: array items[%d,%d] must be unique", f, k.Duplicates[0], k.Duplicates[1])
	case *kind.MinProperties:
		return fmt.Sprintf("%s: Must have at least %d properties", f, k.Want)
	case *kind.MaxProperties:
		return fmt.Sprintf("%s: Must have at most %d properties", f, k.Want)
	case *kind.AnyOf:
		return fmt.Sprintf("%s: Must validate at least one schema (anyOf)", f)
	case *kind.OneOf:
		return fmt.Sprintf("%s: Must validate one and only one schema (oneOf)", f)
	case *kind.AllOf:
		return fmt.Sprintf("%s: Must validate all the schemas (allOf)", f)
	case *kind.Not:
		return fmt.Sprintf("%s: Must not validate the schema (not)", f)
	case *kind.FalseSchema:
		return fmt.Sprintf("%s: False always fails validation", f)
	}
	return fmt.Sprintf("%s: %s", f, strings.TrimSpace(lastLine(e.Error())))
}

func lastLine(s string) string {
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.Index(s, ": "); i >= 0 && strings.HasPrefix(strings.TrimSpace(s), "at ") {
		s = s[i+2:]
	}
	return s
}

func rat(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func display(v any) string {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(buf)
}

func at(v any, loc []string) (any, bool) {
	for _, p := range loc {
		switch t := v.(type) {
		case map[string]any:
			n, ok := t[p]
			if !ok {
				return nil, false
			}
			v = n
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func isInteger(v any) bool {
	switch n := v.(type) {
	case float64:
		return n == float64(int64(n))
	case float32:
		return n == float32(int64(n))
	case json.Number:
		_, err := n.Int64()
		return err == nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return true
	}
	return false
}
