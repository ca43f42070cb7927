package schema

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestStoreObjectShorthand(t *testing.T) {
	v, err := CompileStoreObject(map[string]any{
		"CanMilk":  map[string]any{"type": "boolean"},
		"Location": map[string]any{"type": "string"},
		"Spotted":  map[string]any{"type": "boolean", "isrequired": true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(map[string]any{"Id": "fred1", "Spotted": true}); err != nil {
		t.Fatalf("valid object rejected: %v", err)
	}
	err = v.Validate(map[string]any{"Id": "fred1"})
	if err == nil || err.Error() != "(root): Spotted is required" {
		t.Fatalf("missing field: got %v", err)
	}
	err = v.Validate(map[string]any{"Id": "fred1", "Spotted": "yes"})
	if err == nil || err.Error() != "Spotted: Invalid type. Expected: boolean, given: string" {
		t.Fatalf("wrong type: got %v", err)
	}
}

func TestEmptyAcceptsAll(t *testing.T) {
	v, err := CompileStoreObject(map[string]any{})
	if err != nil || v != nil {
		t.Fatalf("got %v %v", v, err)
	}
	if err := v.Validate(42); err != nil {
		t.Fatal(err)
	}
}

func TestParamSchema(t *testing.T) {
	v, err := Compile(map[string]any{"type": "integer"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(2); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(float64(3)); err != nil {
		t.Fatalf("float64 3 is an integer in JSON: %v", err)
	}
	err = v.Validate("x")
	if err == nil || err.Error() != "(root): Invalid type. Expected: integer, given: string" {
		t.Fatalf("got %v", err)
	}
	e, err := Compile(map[string]any{"type": "string", "enum": []any{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Validate("c"); err == nil || !strings.Contains(err.Error(), `must be one of the following: "a", "b"`) {
		t.Fatalf("enum: got %v", err)
	}
}

func TestFullSchemaAndBadSchema(t *testing.T) {
	v, err := CompileStoreObject(map[string]any{"type": "object", "required": []any{"Name"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(map[string]any{}); err == nil || err.Error() != "(root): Name is required" {
		t.Fatalf("got %v", err)
	}
	if _, err := Compile(map[string]any{"type": 12}); err == nil {
		t.Fatal("invalid schema compiled")
	}
	if _, err := CompileStoreObject(map[string]any{"x": 1}); err == nil {
		t.Fatal("invalid shorthand compiled")
	}
}

func TestStoreObjectFields(t *testing.T) {
	short := StoreObjectFields(map[string]any{
		"CanMilk":  map[string]any{"type": "boolean"},
		"Location": map[string]any{"type": "string"},
		"Spotted":  map[string]any{"type": "boolean", "isrequired": true},
		"Tags":     map[string]any{"items": map[string]any{"type": "string"}},
	})
	if len(short) != 3 || short["CanMilk"] != "boolean" || short["Location"] != "string" || short["Spotted"] != "boolean" {
		t.Fatalf("shorthand fields: %v", short)
	}
	full := StoreObjectFields(map[string]any{"type": "object", "properties": map[string]any{
		"Size": map[string]any{"type": "integer"}, "Any": map[string]any{"type": []any{"string", "null"}},
	}})
	if len(full) != 1 || full["Size"] != "integer" {
		t.Fatalf("full schema fields: %v", full)
	}
	if len(StoreObjectFields(map[string]any{})) != 0 || len(StoreObjectFields(nil)) != 0 {
		t.Fatal("empty documents have no fields")
	}
}

// TestNormaliseScalars checks that the scalar shortcut of normalise
// gives exactly what the JSON round trip gives.
func TestNormaliseScalars(t *testing.T) {
	roundTrip := func(v any) any {
		buf, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(buf))
		dec.UseNumber()
		var out any
		if err := dec.Decode(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, v := range []any{nil, true, false, "", "x", "<&>", "é\u2028", 0.0, 7.0, -1.5, 1e21, 1e-7, 123456789.125, math.MaxFloat64} {
		got, err := normalise(v)
		if err != nil {
			t.Fatalf("normalise(%#v): %v", v, err)
		}
		if want := roundTrip(v); !reflect.DeepEqual(got, want) {
			t.Errorf("normalise(%#v) = %#v, round trip gives %#v", v, got, want)
		}
	}
	// Invalid UTF-8 takes the round trip (which replaces it).
	got, err := normalise("a\xffb")
	if err != nil || got != "a\ufffdb" {
		t.Errorf("normalise(invalid UTF-8) = %#v, %v", got, err)
	}
}
