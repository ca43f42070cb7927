package drpcompat

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/VictorLowther/jsonpatch2"
	"github.com/provisionhq/provision/server/secrets"
	"github.com/provisionhq/provision/server/servertest"
)

// jsonPtrSegment mirrors cli/utils.go makeJsonPtr: "~" → "~0", "/" → "~1".
func jsonPtrSegment(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// TestParamRoundTrips mirrors cli/paramHelper.go and the incrementer's
// REST callbacks (drp-protocol §5.11): params [id] (GET, ?aggregate,
// ?decode), params [id] [json] (POST replaces all), get/set/remove [id]
// param [key] (GET/POST/DELETE .../params/<key>, key with slashes, built
// by path.Join), add [id] param [key] to [v] (maybeEncryptParam's GET
// /params/<key> and .../pubkey, then GET params and PATCH [test "" , add])
// and the --ref forms (test+replace, test+remove, paranoid PatchObj).
func TestParamRoundTrips(t *testing.T) {
	ts := servertest.Start(t, servertest.Options{})
	c := tokenSession(t, ts.URL, adminToken(t, ts))
	m := &drpMachine{Name: "pm", Params: map[string]any{"base": 1}}
	c.req().post(m).urlFor("machines").mustDo(t, m)
	id := m.Uuid.String()
	c.req().post(map[string]any{"Name": "prof", "Params": map[string]any{"from/profile": "p"}}).urlFor("profiles").mustDo(t, &map[string]any{})
	c.req().patch([]map[string]any{{"op": "add", "path": "/Profiles", "value": []string{"prof"}}}).urlFor("machines", id).mustDo(t, m)

	// get [id] param [key]: unset is null, slashes stay path segments.
	var v any = "sentinel"
	c.req().urlFor("machines", id, "params", "incrementer/step").mustDo(t, &v)
	if v != nil || !strings.HasSuffix(c.last().URL, "/machines/"+id+"/params/incrementer/step") {
		t.Fatalf("unset param: %v via %s", v, c.last().URL)
	}
	// set: POST the JSON value, answer is the value.
	var set any
	c.req().post(2).urlFor("machines", id, "params", "incrementer/step").mustDo(t, &set)
	if set != float64(2) {
		t.Fatalf("set answered %v", set)
	}
	c.req().urlFor("machines", id, "params", "incrementer/step").mustDo(t, &v)
	if v != float64(2) {
		t.Fatalf("get after set: %v", v)
	}
	// get --aggregate sees the profile's value; without it, nothing.
	c.req().urlFor("machines", id, "params", "from/profile").params("aggregate", "true").mustDo(t, &v)
	if v != "p" {
		t.Fatalf("aggregate param: %v", v)
	}
	var all map[string]any
	c.req().urlFor("machines", id, "params").params("aggregate", "true").mustDo(t, &all)
	if all["from/profile"] != "p" || all["base"] != float64(1) || all["incrementer/step"] != float64(2) {
		t.Fatalf("aggregate params: %v", all)
	}

	// add: maybeEncryptParam first GETs /params/<key>; a 404 means "not
	// secure", and the value goes in as is.
	var pdef map[string]any
	err := c.req().urlFor("params", "incrementer/parameter").do(&pdef)
	asDRPError(t, err, http.StatusNotFound)
	var cur map[string]any
	c.req().urlFor("machines", id, "params").mustDo(t, &cur)
	addPatch := jsonpatch2.Patch{
		{Op: "test", Path: "", Value: cur},
		{Op: "add", Path: "/" + jsonPtrSegment("incrementer/parameter"), Value: "parm5"},
	}
	var after any
	c.req().patch(addPatch).urlFor("machines", id, "params").mustDo(t, &after)
	if got := after.(map[string]any)["incrementer/parameter"]; got != "parm5" {
		t.Fatalf("add answered %v", after)
	}
	// add again with the old snapshot: the whole-map test fails (409), the
	// params map is a map, so a key added meanwhile is a change.
	err = c.req().patch(addPatch).urlFor("machines", id, "params").do(&after)
	asDRPError(t, err, http.StatusConflict)

	// set/remove --ref: test of the key's value, then replace/remove.
	ptr := "/" + jsonPtrSegment("incrementer/step")
	c.req().patch(jsonpatch2.Patch{{Op: "test", Path: ptr, Value: 2}, {Op: "replace", Path: ptr, Value: 4}}).
		urlFor("machines", id, "params").mustDo(t, &after)
	c.req().patch(jsonpatch2.Patch{{Op: "test", Path: ptr, Value: 4}, {Op: "remove", Path: ptr}}).
		urlFor("machines", id, "params").mustDo(t, &after)
	if _, ok := after.(map[string]any)["incrementer/step"]; ok {
		t.Fatalf("remove --ref left %v", after)
	}
	// params [id] [json] --ref: ParanoidPatch PatchObj on the map.
	cur = nil
	c.req().urlFor("machines", id, "params").mustDo(t, &cur)
	want := map[string]any{"base": 1, "incrementer/parameter": "parm6"}
	all = nil // a decode into a non-nil map merges keys
	c.req().paranoidPatch().patchObj(cur, want).urlFor("machines", id, "params").mustDo(t, &all)
	if all["incrementer/parameter"] != "parm6" || len(all) != 2 {
		t.Fatalf("params --ref: %v", all)
	}

	// remove: DELETE answers the old value.
	var old any
	c.req().del().urlFor("machines", id, "params", "incrementer/parameter").mustDo(t, &old)
	if old != "parm6" {
		t.Fatalf("remove answered %v", old)
	}
	// params [id] [json]: POST replaces the whole map and answers it.
	all = nil
	c.req().post(map[string]any{"jj": 3}).urlFor("machines", id, "params").mustDo(t, &all)
	if len(all) != 1 || all["jj"] != float64(3) {
		t.Fatalf("params replace: %v", all)
	}

	// Secure param: add finds Secure in the Param, fetches .../pubkey
	// (a JSON base64 string decoded into []byte) and sends SecureData.
	c.req().post(map[string]any{"Name": "sec/pass", "Secure": true, "Schema": map[string]any{"type": "string"}}).
		urlFor("params").mustDo(t, &pdef)
	c.req().urlFor("params", "sec/pass").mustDo(t, &pdef)
	if pdef["Secure"] != true {
		t.Fatalf("param def %v", pdef)
	}
	var pub []byte
	c.req().urlFor("machines", id, "pubkey").mustDo(t, &pub)
	if len(pub) != 32 {
		t.Fatalf("pubkey decoded to %d bytes", len(pub))
	}
	plain, _ := json.Marshal("hunter2")
	sd, err := secrets.SealTo(pub, plain)
	if err != nil {
		t.Fatal(err)
	}
	c.req().post(sd).urlFor("machines", id, "params", "sec/pass").mustDo(t, &v)
	c.req().urlFor("machines", id, "params", "sec/pass").params("decode", "true").mustDo(t, &v)
	if v != "hunter2" {
		t.Fatalf("decoded secure param %v", v)
	}
	c.req().urlFor("machines", id, "params", "sec/pass").mustDo(t, &v)
	if s, _ := json.Marshal(v); !strings.Contains(string(s), `"Nonce"`) {
		t.Fatalf("secure param shown without decode: %s", s)
	}
}
