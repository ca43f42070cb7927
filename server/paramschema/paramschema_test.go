package paramschema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func mustJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMessagesMatchGojsonschemaWording(t *testing.T) {
	v := New()
	cases := []struct {
		schema, value, want string
	}{
		{`{"type":"integer"}`, `"x"`, "(root): Invalid type. Expected: integer, given: string"},
		{`{"type":"string"}`, `3`, "(root): Invalid type. Expected: string, given: integer"},
		{`{"type":"string"}`, `3.5`, "(root): Invalid type. Expected: string, given: number"},
		{`{"type":"object","required":["Spotted"]}`, `{}`, "(root): Spotted is required"},
		{`{"type":"object","properties":{"Spotted":{"type":"boolean"}}}`, `{"Spotted":"yes"}`, "Spotted: Invalid type. Expected: boolean, given: string"},
		{`{"type":"integer","minimum":1}`, `0`, "(root): Must be greater than or equal to 1"},
		{`{"type":"integer","maximum":10}`, `11`, "(root): Must be less than or equal to 10"},
		{`{"enum":["a","b"]}`, `"c"`, `(root): (root) must be one of the following: "a", "b"`},
		{`{"type":"string","pattern":"^a+$"}`, `"b"`, "(root): Does not match pattern '^a+$'"},
		{`{"type":"object","additionalProperties":false}`, `{"x":1}`, "(root): Additional property x is not allowed"},
	}
	for _, c := range cases {
		err := v.Validate(mustJSON(t, c.schema), mustJSON(t, c.value))
		var se *Error
		if !errors.As(err, &se) {
			t.Fatalf("%s with %s: want *Error, got %v", c.schema, c.value, err)
		}
		if !strings.Contains(strings.Join(se.Messages, "\n"), c.want) {
			t.Errorf("%s with %s: got %q, want %q", c.schema, c.value, se.Messages, c.want)
		}
	}
}

func TestValidValuesPass(t *testing.T) {
	v := New()
	if err := v.Validate(mustJSON(t, `{"type":"integer","minimum":1}`), mustJSON(t, `3`)); err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(map[string]any{}, "anything"); err != nil {
		t.Fatal(err)
	}
}

func TestBadSchemaIsReported(t *testing.T) {
	v := New()
	_, err := v.Compile(mustJSON(t, `{"type":"nonsense"}`))
	if err == nil {
		t.Fatal("compile of an invalid schema succeeded")
	}
	_, err = v.Compile(mustJSON(t, `{"$ref":"http://example.com/x.json"}`))
	if err == nil {
		t.Fatal("remote reference was not refused")
	}
}
