package models

import (
	"encoding/json"
	"regexp"
)

// Model is implemented by every storable object type.
type Model interface {
	// Prefix is the collection name used in URLs, e.g. "machines".
	Prefix() string
	// Key is the object's primary key value.
	Key() string
	// KeyName is the name of the key field, e.g. "Uuid".
	KeyName() string
	// Fill replaces nil maps and slices with empty ones so the JSON form is stable.
	Fill()
}

// Paramer is implemented by objects that carry Params.
type Paramer interface {
	Model
	GetParams() map[string]any
	SetParams(map[string]any)
}

// Profiler is implemented by objects that carry an ordered profile list.
type Profiler interface {
	GetProfiles() []string
}

// Validation describes whether an object is valid and usable.
type Validation struct {
	// Validated is true when the object has been checked.
	Validated bool
	// Available is true when the object passed validation.
	Available bool
	// Errors lists validation problems.
	Errors []string
}

func (v *Validation) fill() {
	if v.Errors == nil {
		v.Errors = []string{}
	}
}

// Access marks read-only objects (for example those from a content layer).
type Access struct {
	// ReadOnly objects cannot be changed through the API.
	ReadOnly bool
}

// Meta is free-form string metadata on an object.
type Meta map[string]string

// Owned records which endpoint owns an object.
type Owned struct {
	// Endpoint is the owning endpoint id; "" means this one.
	Endpoint string
}

// Bundled names the content layer an object came from.
type Bundled struct {
	// Bundle is the content layer name, "" for user objects.
	Bundle string
}

// Partialed marks objects returned with some fields left out (slim=...).
type Partialed struct {
	// Partial is true when fields were omitted.
	Partial bool
}

// NameRE is the syntax DRP requires for plugin, provider and similar names.
var NameRE = regexp.MustCompile(`^\pL+([- _.]+|\pN+|\pL+)+$`)

// ParamNameRE is the syntax of param names (may contain slashes).
var ParamNameRE = regexp.MustCompile(`^[\pL\pN]+([-_./:\pL\pN]*[\pL\pN])?$`)

// Remarshal converts src into dst through JSON. It is how plugins turn the
// generic Action.Model into a typed object.
func Remarshal(src, dst any) error {
	buf, err := json.Marshal(src)
	if err != nil {
		return err
	}
	return json.Unmarshal(buf, dst)
}

// Clone deep-copies a JSON-representable value of type T.
func Clone[T any](src T) (T, error) {
	var dst T
	err := Remarshal(src, &dst)
	return dst, err
}

func fillParams(p map[string]any) map[string]any {
	if p == nil {
		return map[string]any{}
	}
	return p
}

func fillMeta(m Meta) Meta {
	if m == nil {
		return Meta{}
	}
	return m
}

func fillStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
