package pluginhost

import (
	"encoding/json"
	"testing"
)

func TestSameJSON(t *testing.T) {
	dec := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	docs := []string{`null`, `"a"`, `true`, `1.5`, `[1,"x"]`, `{"type":"string","enum":["a","b"]}`,
		`{"type":"object","properties":{"a":{"type":"integer","minimum":1}}}`}
	for i, a := range docs {
		for j, b := range docs {
			if got, want := sameJSON(dec(a), dec(b)), i == j; got != want {
				t.Errorf("sameJSON(%s, %s) = %v, want %v", a, b, got, want)
			}
		}
	}
	for _, pair := range [][2]string{
		{`{"a":1}`, `{"a":2}`}, {`{"a":1}`, `{"b":1}`}, {`{"a":1}`, `{"a":1,"b":1}`},
		{`[1,2]`, `[2,1]`}, {`[1]`, `[1,1]`}, {`{"a":[1]}`, `{"a":{"0":1}}`}, {`1`, `"1"`},
	} {
		if sameJSON(dec(pair[0]), dec(pair[1])) {
			t.Errorf("sameJSON(%s, %s) = true", pair[0], pair[1])
		}
	}
	if sameJSON(struct{}{}, struct{}{}) {
		t.Error("sameJSON of a type JSON does not decode to must be false (recompile)")
	}
}

// TestSchemaCacheFollowsChanges checks that a param whose schema changes
// is validated against the new schema, though the cache is keyed by name.
func TestSchemaCacheFollowsChanges(t *testing.T) {
	var c schemaCache
	str := map[string]any{"type": "string"}
	num := map[string]any{"type": "number"}
	v1, err := c.get("p", str)
	if err != nil {
		t.Fatal(err)
	}
	if err := v1.Validate("x"); err != nil {
		t.Fatalf("string schema refused a string: %v", err)
	}
	again, _ := c.get("p", map[string]any{"type": "string"})
	if again != v1 {
		t.Error("the same schema (a new but equal document) was compiled again")
	}
	v2, err := c.get("p", num)
	if err != nil {
		t.Fatal(err)
	}
	if err := v2.Validate("x"); err == nil {
		t.Error("changed schema (number) still accepted a string")
	}
	if err := v2.Validate(1.0); err != nil {
		t.Errorf("number schema refused a number: %v", err)
	}
}
