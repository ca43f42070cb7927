package api_test

import (
	"encoding/json"
	"testing"

	"github.com/provisionhq/provision/server/servertest"
)

// TestComposeParams: ?aggregate=true&compose=true merges maps key by key
// (the more specific level winning) and concatenates arrays (more specific
// entries first) across the object, its profiles, the global profile and,
// for a single param, the definition's default; without compose the most
// specific value wins; secure params are never composed.
func TestComposeParams(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	mustStatus(t, call(t, ts, "POST", "/api/v3/params", map[string]any{"Name": "list",
		"Schema": map[string]any{"type": "array", "default": []any{"default"}}}, nil), 201, "param with default")
	mustStatus(t, call(t, ts, "POST", "/api/v3/params", map[string]any{"Name": "sec", "Secure": true,
		"Schema": map[string]any{"type": "object"}}, nil), 201, "secure param")
	mustStatus(t, call(t, ts, "POST", "/api/v3/profiles", map[string]any{"Name": "rack", "Params": map[string]any{
		"map":  map[string]any{"a": "rack", "b": "rack", "nested": map[string]any{"x": 1, "y": 1}},
		"list": []any{"rack"}, "mixed": []any{"rack"}, "sec": map[string]any{"p": "rack"},
	}}, nil), 201, "profile")
	mustStatus(t, call(t, ts, "POST", "/api/v3/profiles/global/params", map[string]any{
		"map": map[string]any{"c": "global"}, "list": []any{"global"},
	}, nil), 200, "global params")
	m := newMachine(t, ts, map[string]any{"Name": "c1", "Profiles": []string{"rack"}, "Params": map[string]any{
		"map":  map[string]any{"a": "own", "nested": map[string]any{"y": 2}},
		"list": []any{"own"}, "mixed": "own", "sec": map[string]any{"q": "own"},
	}})
	base := "/api/v3/machines/" + m.Uuid.String() + "/params"
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }

	var all map[string]any
	mustStatus(t, call(t, ts, "GET", base+"?aggregate=true&compose=true&decode=true", nil, &all), 200, "compose all")
	for name, want := range map[string]string{
		"map":   `{"a":"own","b":"rack","c":"global","nested":{"x":1,"y":2}}`,
		"list":  `["own","rack","global"]`,
		"mixed": `"own"`,
		"sec":   `{"q":"own"}`,
	} {
		if got := js(all[name]); got != want {
			t.Errorf("composed %s = %s, want %s", name, got, want)
		}
	}
	var one any
	mustStatus(t, call(t, ts, "GET", base+"/list?aggregate=true&compose=true", nil, &one), 200, "compose one")
	if got := js(one); got != `["own","rack","global","default"]` {
		t.Errorf("composed single list = %s", got)
	}
	mustStatus(t, call(t, ts, "GET", base+"/list?aggregate=true", nil, &one), 200, "aggregate one")
	if got := js(one); got != `["own"]` {
		t.Errorf("aggregate without compose = %s", got)
	}
	mustStatus(t, call(t, ts, "GET", base+"?aggregate=true", nil, &all), 200, "aggregate all")
	if got := js(all["map"]); got != `{"a":"own","nested":{"y":2}}` {
		t.Errorf("aggregate map without compose = %s", got)
	}
}
