package hostmodule

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/server/pluginhost/internal/testplugins"
)

// TestIncrementerOnPluginSDK runs the incrementer (DRP's reference plugin,
// ported onto pluginsdk) under provisiond and checks what DRP's recorded
// sessions show: actions with param resolution from the machine, REST
// callbacks with RS_TOKEN, validation messages, content layer, custom
// typed objects, unpacked files.
func TestIncrementerOnPluginSDK(t *testing.T) {
	e := startEnv(t, "", "", nil)
	bin, err := os.ReadFile(testplugins.Package(t, "github.com/provisionhq/provision/plugins/incrementer"))
	if err != nil {
		t.Fatal(err)
	}
	if code, raw := e.doRaw("POST", "/api/v3/plugin_providers/incrementer", "application/octet-stream", bin, ""); code != 201 ||
		!strings.Contains(string(raw), `"path":"incrementer"`) {
		t.Fatalf("upload: %d %s", code, raw)
	}
	var pp models.PluginProviderInfo
	e.do("GET", "/api/v3/plugin_providers/incrementer", nil, &pp)
	if pp.Meta["DisplayName"] != "Incrementer Test Plugin" || len(pp.AvailableActions) != 3 || pp.AvailableActions[0].Provider != "incrementer" {
		t.Fatalf("provider: %+v", pp)
	}
	var param models.Param
	if code, raw := e.do("GET", "/api/v3/params/incrementer/parameter", nil, &param); code != 200 || param.Bundle != "incrementer" {
		t.Fatalf("content param: %d %s", code, raw)
	}
	code, raw := e.do("POST", "/api/v3/typed-cows", map[string]any{"Id": "fred1"}, nil)
	if code != 422 || !strings.Contains(string(raw), "ValidationError") || !strings.Contains(string(raw), "Error in value: (root): Spotted is required") {
		t.Fatalf("typed-cows required: %d %s", code, raw)
	}
	code, raw = e.do("POST", "/api/v3/typed-cows", map[string]any{"Id": "fred1", "Spotted": "yes"}, nil)
	if code != 422 || !strings.Contains(string(raw), "Spotted: Invalid type. Expected: boolean, given: string") {
		t.Fatalf("typed-cows type: %d %s", code, raw)
	}
	if code, raw := e.do("POST", "/api/v3/cows", map[string]any{"Id": "daisy", "Anything": 1}, nil); code != 201 {
		t.Fatalf("untyped cows: %d %s", code, raw)
	}
	// typed-cows fields are indexes as DRP shows them, and filters work.
	var idx map[string]models.Index
	if code, raw := e.do("GET", "/api/v3/indexes/typed-cows", nil, &idx); code != 200 ||
		idx["Location"] != (models.Index{Type: "string", Regex: true}) ||
		idx["Spotted"] != (models.Index{Type: "boolean", Unordered: true}) ||
		idx["CanMilk"] != (models.Index{Type: "boolean", Unordered: true}) ||
		idx["Id"] != (models.Index{Type: "string", Unique: true, Regex: true}) || !idx["ReadOnly"].Unordered {
		t.Fatalf("typed-cows indexes: %d %s", code, raw)
	}
	for _, c := range []map[string]any{
		{"Id": "fred1", "Spotted": true, "CanMilk": true, "Location": "Austin"},
		{"Id": "fred2", "Spotted": true, "CanMilk": false, "Location": "Denver"},
	} {
		if code, raw := e.do("POST", "/api/v3/typed-cows", c, nil); code != 201 {
			t.Fatalf("create typed cow: %d %s", code, raw)
		}
	}
	for query, want := range map[string]string{
		"Spotted=true":                    "fred1,fred2",
		"Spotted=false":                   "bertie",
		"CanMilk=true&Spotted=true":       "fred1",
		"Location=Re(^D)":                 "bertie,fred2",
		"Location=In(Austin,Dallas)":      "bertie,fred1",
		"ReadOnly=true":                   "bertie",
		"sort=Location&reverse=true":      "fred2,bertie,fred1",
		"Bundle=incrementer&Spotted=true": "",
	} {
		var cows []map[string]any
		if code, raw := e.do("GET", "/api/v3/typed-cows?"+query, nil, &cows); code != 200 {
			t.Fatalf("filter %s: %d %s", query, code, raw)
		}
		ids := []string{}
		for _, c := range cows {
			ids = append(ids, c["Id"].(string))
		}
		if strings.Join(ids, ",") != want {
			t.Errorf("typed-cows?%s = %v, want %s", query, ids, want)
		}
	}
	if code, raw := e.do("GET", "/api/v3/typed-cows?Spotted=maybe", nil, nil); code != 400 || !strings.Contains(string(raw), "not true or false") {
		t.Fatalf("bad boolean filter: %d %s", code, raw)
	}
	resp, err := http.Get(e.ts.StaticURL + "/files/plugin_providers/incrementer/testFile")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ImaFile" {
		t.Fatalf("testFile: %q", b)
	}

	e.createPlugin("incr", "incrementer", nil)
	waitFor(t, 20*time.Second, "incrementer configured", func() bool {
		code, v := e.action("/api/v3/system", "incrstatus", nil)
		return code == 200 && v == "Running"
	})
	var m models.Machine
	e.do("POST", "/api/v3/machines", map[string]any{"Name": "john", "Params": map[string]any{"incrementer/step": 2}}, &m)
	mp := "/api/v3/machines/" + m.Uuid.String()
	code, v := e.action(mp, "reset_count", nil)
	if code != 400 || errText(v) != "INVOKE: machines/"+m.Uuid.String()+": Action reset_count Missing Parameter incrementer/touched" {
		t.Fatalf("reset_count before touch: %d %s", code, errText(v))
	}
	if code, v := e.action(mp, "increment", nil); code != 200 || v != float64(2) {
		t.Fatalf("increment: %d %v", code, errText(v))
	}
	if code, v := e.action(mp, "increment?plugin=incr", nil); code != 200 || v != float64(4) {
		t.Fatalf("increment again: %d %v", code, errText(v))
	}
	code, v = e.action(mp, "increment", map[string]any{"incrementer/step": "x"})
	if code != 400 || !strings.Contains(errText(v), "Action increment: Invalid Parameter: incrementer/step: : (root): Invalid type. Expected: integer, given: string") {
		t.Fatalf("invalid step: %d %s", code, errText(v))
	}
	var got any
	e.do("GET", mp+"/params/incrementer/default", nil, &got)
	if got != float64(4) {
		t.Fatalf("machine param after increments: %v", got)
	}
	var list []models.AvailableAction
	e.do("GET", mp+"/actions", nil, &list)
	names := []string{}
	for _, a := range list {
		names = append(names, a.Command)
	}
	if strings.Join(names, ",") != "increment,reset_count" {
		t.Fatalf("actions once touched: %v", names)
	}
	if code, v := e.action(mp, "reset_count", nil); code != 200 || v != "Success" {
		t.Fatalf("reset_count: %d %v", code, errText(v))
	}
	// The SDK answers an unknown plugin-apis path as DRP's library does
	// ("Messages":null); REST clients get a message saying what failed.
	code, raw = e.doRaw("GET", "/api/v3/plugin-apis/incr/nosuch", "", nil, "")
	var nr models.Error
	if err := json.Unmarshal(raw, &nr); err != nil || code != 404 || nr.Code != 404 ||
		nr.Error() != "GET: /api/v3/plugin-apis/incr/nosuch: No route: /api/v3/plugin-apis/incr/nosuch on plugin incr" {
		t.Fatalf("unknown plugin-apis path: %d %s", code, raw)
	}
	code, v = e.action(mp, "explode", nil)
	if code != 400 || errText(v) != "INVOKE: machines/"+m.Uuid.String()+": Action explode on machines: Not Found" {
		t.Fatalf("unknown action: %d %s", code, errText(v))
	}
}
