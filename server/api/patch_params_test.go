package api_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/servertest"
)

func newMachine(t *testing.T, ts *servertest.Server, body map[string]any) models.Machine {
	t.Helper()
	var m models.Machine
	mustStatus(t, call(t, ts, "POST", "/api/v3/machines", body, &m), 201, "create machine")
	return m
}

func TestPatch(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	m := newMachine(t, ts, map[string]any{"Name": "p1", "Description": "old"})
	path := "/api/v3/machines/" + m.Uuid.String()

	var out models.Machine
	ok := []map[string]any{
		{"op": "test", "path": "/Description", "value": "old"},
		{"op": "replace", "path": "/Description", "value": "new"},
		{"op": "add", "path": "/Params/x", "value": 3},
	}
	mustStatus(t, call(t, ts, "PATCH", path, ok, &out), 200, "patch")
	if out.Description != "new" || out.Params["x"] != float64(3) {
		t.Fatalf("patched %+v", out)
	}

	bad := []map[string]any{
		{"op": "replace", "path": "/Description", "value": "lost"},
		{"op": "test", "path": "/Description", "value": "old"},
	}
	resp, body := ts.Do(t, "PATCH", path, bad)
	wantError(t, resp, body, 409, "PATCH: machines/"+m.Uuid.String(), "Test op failed")
	missing := []map[string]any{{"op": "replace", "path": "/Nope/deeper", "value": 1}}
	resp, body = ts.Do(t, "PATCH", path, missing)
	wantError(t, resp, body, 422, "does not exist")
	unknown := []map[string]any{{"op": "add", "path": "/NoSuchField", "value": 1}}
	resp, body = ts.Do(t, "PATCH", path, unknown)
	wantError(t, resp, body, 422, `machines have no field "NoSuchField": patch only the fields a GET shows`)
	wrongType := []map[string]any{{"op": "replace", "path": "/Runnable", "value": "yes"}}
	resp, body = ts.Do(t, "PATCH", path, wrongType)
	wantError(t, resp, body, 422, "the patched object is not a valid machines object")
	resp, body = ts.Do(t, "PATCH", path, `[{"op":"frobnicate","path":"/x"}]`)
	wantError(t, resp, body, 400, "Invalid JSON Patch")
	resp, body = ts.Do(t, "PATCH", path, `{not json`)
	wantError(t, resp, body, 400, "Invalid JSON Patch")
	keyChange := []map[string]any{{"op": "replace", "path": "/Uuid", "value": "11111111-1111-1111-1111-111111111111"}}
	resp, body = ts.Do(t, "PATCH", path, keyChange)
	wantError(t, resp, body, 400, "Key change")

	var now models.Machine
	call(t, ts, "GET", path, nil, &now)
	if now.Description != "new" || len(now.Params) != 1 {
		t.Fatalf("failed patches changed the machine: %+v", now)
	}
}

func TestParamsEndpointsAndAggregation(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	mustStatus(t, call(t, ts, "POST", "/api/v3/profiles", map[string]any{"Name": "p1", "Params": map[string]any{"a": "p1", "b": "p1"}}, nil), 201, "p1")
	mustStatus(t, call(t, ts, "POST", "/api/v3/profiles", map[string]any{"Name": "p2", "Params": map[string]any{"a": "p2", "b": "p2", "c": "p2"}}, nil), 201, "p2")
	mustStatus(t, call(t, ts, "POST", "/api/v3/profiles/global/params", map[string]any{"a": "g", "d": "g"}, nil), 200, "global params")
	resp, body := ts.Do(t, "POST", "/api/v3/machines", map[string]any{"Name": "x", "Profiles": []string{"nope"}})
	wantError(t, resp, body, 422, "Profile nope does not exist")
	m := newMachine(t, ts, map[string]any{"Name": "agg", "Profiles": []string{"p1", "p2"}, "Params": map[string]any{"a": "own"}})
	base := "/api/v3/machines/" + m.Uuid.String() + "/params"

	var agg map[string]any
	mustStatus(t, call(t, ts, "GET", base+"?aggregate=true", nil, &agg), 200, "aggregate")
	want := map[string]any{"a": "own", "b": "p1", "c": "p2", "d": "g"}
	for k, v := range want {
		if agg[k] != v {
			t.Fatalf("aggregate[%s] = %v, want %v (all %v)", k, agg[k], v, agg)
		}
	}
	var own map[string]any
	call(t, ts, "GET", base, nil, &own)
	if len(own) != 1 {
		t.Fatalf("own params %v", own)
	}
	var v any
	call(t, ts, "GET", base+"/d?aggregate=true", nil, &v)
	if v != "g" {
		t.Fatalf("single aggregate d = %v", v)
	}
	resp, body = ts.Do(t, "GET", base+"/d", nil)
	if resp.StatusCode != 200 || string(body) != "null" {
		t.Fatalf("unset param: %d %s", resp.StatusCode, body)
	}

	// Keys with slashes; set, get, delete.
	mustStatus(t, call(t, ts, "POST", base+"/incrementer/step", 2, &v), 200, "set slashed")
	call(t, ts, "GET", base+"/incrementer/step", nil, &v)
	if v != float64(2) {
		t.Fatalf("incrementer/step = %v", v)
	}
	mustStatus(t, call(t, ts, "DELETE", base+"/incrementer/step", nil, &v), 200, "delete param")
	if v != float64(2) {
		t.Fatalf("delete returned %v", v)
	}
	// PATCH params with a test op (drpcli add).
	patch := []map[string]any{{"op": "test", "path": "", "value": map[string]any{"a": "own"}}, {"op": "add", "path": "/z", "value": true}}
	var after map[string]any
	mustStatus(t, call(t, ts, "PATCH", base, patch, &after), 200, "patch params")
	if after["z"] != true {
		t.Fatalf("after patch %v", after)
	}
	resp, body = ts.Do(t, "PATCH", base, patch)
	wantError(t, resp, body, 409, "Test op failed")
	// POST params replaces the map.
	var repl map[string]any
	call(t, ts, "POST", base, map[string]any{"jj": 3}, &repl)
	if len(repl) != 1 || repl["jj"] != float64(3) {
		t.Fatalf("replace %v", repl)
	}
	resp, body = ts.Do(t, "GET", "/api/v3/machines/nope/params", nil)
	wantError(t, resp, body, 404, "Not Found")
	resp, body = ts.Do(t, "DELETE", "/api/v3/profiles/p1", nil)
	wantError(t, resp, body, 409, "in use by machines/")
}

func TestParamSchemaEnforced(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	mustStatus(t, call(t, ts, "POST", "/api/v3/params", map[string]any{"Name": "incrementer/step", "Schema": map[string]any{"type": "integer", "minimum": 1}}, nil), 201, "param def")
	resp, body := ts.Do(t, "POST", "/api/v3/params", map[string]any{"Name": "bad", "Schema": map[string]any{"type": "nonsense"}})
	wantError(t, resp, body, 422, "Schema")
	m := newMachine(t, ts, map[string]any{"Name": "s", "Params": map[string]any{"incrementer/step": 2}})
	base := "/api/v3/machines/" + m.Uuid.String()

	resp, body = ts.Do(t, "POST", base+"/params/incrementer/step", `"two"`)
	wantError(t, resp, body, 422, "ValidationError", "incrementer/step", "(root): Invalid type. Expected: integer, given: string")
	resp, body = ts.Do(t, "POST", base+"/params/incrementer/step", `0`)
	wantError(t, resp, body, 422, "(root): Must be greater than or equal to 1")
	resp, body = ts.Do(t, "PATCH", base, []map[string]any{{"op": "replace", "path": "/Params/incrementer~1step", "value": "x"}})
	wantError(t, resp, body, 422, "Invalid type")
	resp, body = ts.Do(t, "POST", "/api/v3/machines", map[string]any{"Name": "t", "Params": map[string]any{"incrementer/step": true}})
	wantError(t, resp, body, 422, "Expected: integer, given: boolean")
	resp, body = ts.Do(t, "POST", "/api/v3/profiles/global/params", map[string]any{"incrementer/step": "no"})
	wantError(t, resp, body, 422, "Invalid type")

	var v any
	call(t, ts, "GET", base+"/params/incrementer/step", nil, &v)
	if v != float64(2) {
		t.Fatalf("rejected writes changed the value: %v", v)
	}
	var list []models.Machine
	call(t, ts, "GET", "/api/v3/machines", nil, &list)
	if len(list) != 1 {
		t.Fatalf("rejected create stored a machine: %d", len(list))
	}
}

func TestFilters(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	for i := 1; i <= 6; i++ {
		newMachine(t, ts, map[string]any{"Name": fmt.Sprintf("n%d", i), "Address": fmt.Sprintf("10.0.0.%d", i),
			"Runnable": i%2 == 0, "CurrentTask": i, "Params": map[string]any{"rack": fmt.Sprintf("r%d", i%3), "size": i * 10}})
	}
	names := func(q string) []string {
		t.Helper()
		var ms []models.Machine
		resp, body := ts.Do(t, "GET", "/api/v3/machines?"+q, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &ms); err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	cases := map[string]string{
		"Name=n3":                               "[n3]",
		"Name=Eq(n3)":                           "[n3]",
		"Name=Re(^n[12]$)&sort=Name":            "[n1 n2]",
		"Name=In(n1,n5)&sort=Name":              "[n1 n5]",
		"Name=Nin(n1,n2,n3)&sort=Name":          "[n4 n5 n6]",
		"CurrentTask=Between(2,4)&sort=Name":    "[n2 n3 n4]",
		"CurrentTask=Except(2,5)&sort=Name":     "[n1 n6]",
		"CurrentTask=Gt(4)&sort=Name":           "[n5 n6]",
		"CurrentTask=Lte(2)&sort=Name":          "[n1 n2]",
		"Runnable=true&sort=Name":               "[n2 n4 n6]",
		"Address=Gte(10.0.0.5)&sort=Name":       "[n5 n6]",
		"rack=r0&sort=Name":                     "[n3 n6]",
		"size=Gt(40)&sort=Name":                 "[n5 n6]",
		"sort=CurrentTask&reverse=true&limit=2": "[n6 n5]",
		"sort=Name&offset=4":                    "[n5 n6]",
		"Name=Ne(n1)&Runnable=false&sort=Name":  "[n3 n5]",
	}
	for q, want := range cases {
		if got := fmt.Sprint(names(q)); got != want {
			t.Errorf("%s: got %s, want %s", q, got, want)
		}
	}
	resp, body := ts.Do(t, "GET", "/api/v3/params?Nope=1", nil)
	wantError(t, resp, body, 400, "Filter not found: Nope")
	resp, body = ts.Do(t, "GET", "/api/v3/machines?Name=Re(%5B)", nil)
	wantError(t, resp, body, 400, "bad regular expression")
	resp, body = ts.Do(t, "GET", "/api/v3/machines?CurrentTask=Gt(x)", nil)
	wantError(t, resp, body, 400, "not a number")
	resp, body = ts.Do(t, "GET", "/api/v3/machines?sort=Nope", nil)
	wantError(t, resp, body, 400, "Cannot sort")
}
