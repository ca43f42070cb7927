package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk/content"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
)

func TestMain(m *testing.M) { os.Exit(plugintest.Main(m)) }

const testToken = "incrementer-test-token"

// fakeAPI is a small /api/v3 that stores machine params like provisiond:
// GET answers the value or null, POST sets it and answers it, DELETE
// removes it and answers the old value. It checks the bearer token.
type fakeAPI struct {
	mu     sync.Mutex
	params map[string]map[string]any // uuid -> name -> value
	calls  []string
}

func newFakeAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{params: map[string]map[string]any{}}
	srv := httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		reply(http.StatusForbidden, &models.Error{Type: r.Method, Code: 403, Messages: []string{"bad token"}})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v3/machines/")
	uuid, name, ok2 := strings.Cut(rest, "/params/")
	if !ok || !ok2 || name == "" {
		reply(http.StatusNotFound, &models.Error{Type: r.Method, Key: r.URL.Path, Code: 404, Messages: []string{"No route"}})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+name)
	if f.params[uuid] == nil {
		f.params[uuid] = map[string]any{}
	}
	switch r.Method {
	case http.MethodGet:
		reply(http.StatusOK, f.params[uuid][name])
	case http.MethodPost:
		if !strings.Contains(r.Header.Get("Content-Type"), "application/json") {
			reply(http.StatusUnsupportedMediaType, &models.Error{Type: "POST", Code: 415})
			return
		}
		var v any
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			reply(http.StatusBadRequest, &models.Error{Type: "POST", Code: 400, Messages: []string{err.Error()}})
			return
		}
		f.params[uuid][name] = v
		reply(http.StatusOK, v)
	case http.MethodDelete:
		old, ok := f.params[uuid][name]
		if !ok {
			reply(http.StatusNotFound, &models.Error{Model: "machines", Key: uuid, Type: "DELETE", Code: 404, Messages: []string{"Not Found"}})
			return
		}
		delete(f.params[uuid], name)
		reply(http.StatusOK, old)
	default:
		reply(http.StatusMethodNotAllowed, &models.Error{Type: r.Method, Code: 405})
	}
}

func (f *fakeAPI) param(uuid, name string) (any, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.params[uuid][name]
	return v, ok
}

func provider(t *testing.T, endpoint string) *plugintest.Provider {
	p := plugintest.FromPackage(t, ".")
	p.Env["RS_ENDPOINT"] = endpoint
	p.Env["RS_TOKEN"] = testToken
	return p
}

func TestDefine(t *testing.T) {
	p := plugintest.FromPackage(t, ".")
	def := p.Define(t)
	if def.Name != "incrementer" || def.PluginVersion != 4 || def.HasPublish {
		t.Errorf("definition header: %+v", def)
	}
	cmds := map[string]models.AvailableAction{}
	for _, a := range def.AvailableActions {
		cmds[a.Command] = a
	}
	if a := cmds["increment"]; a.Model != "machines" || strings.Join(a.OptionalParams, ",") != "incrementer/step,incrementer/parameter" {
		t.Errorf("increment: %+v", a)
	}
	if a := cmds["reset_count"]; a.Model != "machines" || strings.Join(a.RequiredParams, ",") != "incrementer/touched" {
		t.Errorf("reset_count: %+v", a)
	}
	if a, ok := cmds["incrstatus"]; !ok || a.Model != "" {
		t.Errorf("incrstatus: %+v", a)
	}
	typed, _ := def.StoreObjects["typed-cows"].(map[string]any)
	spotted, _ := typed["Spotted"].(map[string]any)
	if spotted["isrequired"] != true || spotted["type"] != "boolean" {
		t.Errorf("typed-cows schema: %v", def.StoreObjects)
	}
	if cows, ok := def.StoreObjects["cows"].(map[string]any); !ok || len(cows) != 0 {
		t.Errorf("cows: %v", def.StoreObjects["cows"])
	}
	c, err := content.Unmarshal([]byte(def.Content), ".yaml")
	if err != nil {
		t.Fatalf("Content is not a bundle: %v", err)
	}
	if c.Meta.Description != "Test Plugin for DRP" || c.Meta.DisplayName != "Incrementer Test Plugin" || c.Meta.Name != "incrementer" {
		t.Errorf("content meta: %+v", c.Meta)
	}
	for _, n := range []string{"incrementer/step", "incrementer/parameter", "incrementer/touched"} {
		if _, ok := c.Sections["params"][n]; !ok {
			t.Errorf("param %s missing from content", n)
		}
	}
	step := c.Sections["params"]["incrementer/step"].(map[string]any)
	if step["Schema"].(map[string]any)["type"] != "integer" {
		t.Errorf("step schema: %v", step)
	}
	bertie, _ := c.Sections["typed-cows"]["bertie"].(map[string]any)
	if bertie["Location"] != "Dallas" || bertie["Spotted"] != false {
		t.Errorf("bertie: %v", bertie)
	}
}

func TestUnpack(t *testing.T) {
	p := plugintest.FromPackage(t, ".")
	dir := filepath.Join(t.TempDir(), "files", "plugin_providers", "incrementer")
	p.Unpack(t, dir)
	buf, err := os.ReadFile(filepath.Join(dir, "testFile"))
	if err != nil || string(buf) != "ImaFile" {
		t.Fatalf("testFile = %q, %v", buf, err)
	}
	out, err := exec.Command(p.Path, "unpack").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unpack <dir>") {
		t.Errorf("unpack without a directory: err %v, output %q", err, out)
	}
}

func TestListenWrongArgs(t *testing.T) {
	p := plugintest.FromPackage(t, ".")
	out, err := exec.Command(p.Path, "listen", "/only/one").Output()
	if err == nil || string(out) != "Failed\n" {
		t.Errorf("listen with one socket: stdout %q, err %v", out, err)
	}
}

func machineAction(cmd, uuid string, params map[string]any) *models.Action {
	return &models.Action{
		Model:   map[string]any{"Uuid": uuid, "Name": "john", "Params": map[string]any{}},
		Plugin:  "incr",
		Command: cmd,
		Params:  params,
	}
}

func TestActions(t *testing.T) {
	api, srv := newFakeAPI(t)
	pl := provider(t, srv.URL).Start(t)

	res := pl.Config(t, map[string]any{"incrementer/step": 2})
	if res.Status != 200 || string(res.Body) != `{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`+"\n" {
		t.Fatalf("config: %d %s", res.Status, res.Body)
	}
	pl.Host.WaitForMessage(t, 0, "configured")

	const uuid = "3e7031fe-3062-45f1-835c-92541bc9cbd3"
	// Defaults: step 1 into incrementer/default.
	res = pl.Action(t, machineAction("increment", uuid, nil))
	if res.Status != 200 || strings.TrimSpace(string(res.Body)) != "1" {
		t.Fatalf("increment: %d %s", res.Status, res.Body)
	}
	if v, _ := api.param(uuid, "incrementer/default"); v != 1.0 {
		t.Errorf("incrementer/default = %v", v)
	}
	// Step and parameter as the host resolves them (JSON numbers).
	for _, want := range []string{"2", "4"} {
		res = pl.Action(t, machineAction("increment", uuid, map[string]any{"incrementer/step": 2, "incrementer/parameter": "parm5"}))
		if res.Status != 200 || strings.TrimSpace(string(res.Body)) != want {
			t.Fatalf("increment parm5: %d %s, want %s", res.Status, res.Body, want)
		}
	}
	if v, _ := api.param(uuid, "incrementer/touched"); v != 3.0 {
		t.Errorf("incrementer/touched = %v, want 3", v)
	}

	// A step that is not an integer is refused and changes nothing.
	for _, bad := range []any{"two", 1.5, true} {
		res = pl.Action(t, machineAction("increment", uuid, map[string]any{"incrementer/step": bad, "incrementer/parameter": "parm5"}))
		e := res.Error()
		if res.Status != 400 || e == nil || e.Code != 400 || !strings.Contains(e.Messages[0], "incrementer/step must be an integer") {
			t.Errorf("bad step %v: %d %s", bad, res.Status, res.Body)
		}
	}
	if v, _ := api.param(uuid, "parm5"); v != 4.0 {
		t.Errorf("parm5 changed by a refused action: %v", v)
	}

	res = pl.Action(t, machineAction("reset_count", uuid, map[string]any{"incrementer/touched": 3}))
	if res.Status != 200 || strings.TrimSpace(string(res.Body)) != `"Success"` {
		t.Fatalf("reset_count: %d %s", res.Status, res.Body)
	}
	if _, ok := api.param(uuid, "incrementer/touched"); ok {
		t.Error("reset_count left incrementer/touched")
	}
	// Resetting again: the API's 404 comes back as the plugin's 400.
	res = pl.Action(t, machineAction("reset_count", uuid, nil))
	if e := res.Error(); res.Status != 400 || e == nil || e.Key != "incrementer" || !strings.Contains(e.Messages[0], "Not Found") {
		t.Errorf("second reset_count: %d %s", res.Status, res.Body)
	}

	res = pl.Action(t, &models.Action{Command: "incrstatus", Plugin: "incr"})
	if res.Status != 200 || strings.TrimSpace(string(res.Body)) != `"Running"` {
		t.Errorf("incrstatus: %d %s", res.Status, res.Body)
	}

	res = pl.Action(t, machineAction("explode", uuid, nil))
	if res.Status != 404 || strings.TrimSpace(string(res.Body)) != `{"Model":"plugin","Key":"incrementer","Type":"plugin","Messages":["Unknown command: explode\n"],"Code":404}` {
		t.Errorf("unknown command: %d %s", res.Status, res.Body)
	}

	res = pl.Stop(t)
	if res.Status != 200 || res.Error() == nil || res.Error().Code != 200 {
		t.Errorf("stop: %d %s", res.Status, res.Body)
	}
	pl.Host.WaitForMessage(t, 0, "STOPPING")
	if r := pl.Host.Rejected(); len(r) != 0 {
		t.Errorf("host refused plugin requests: %v", r)
	}
}

func TestConfigNeedsToken(t *testing.T) {
	p := plugintest.FromPackage(t, ".")
	delete(p.Env, "RS_TOKEN")
	pl := p.Start(t)
	res := pl.Config(t, nil)
	if e := res.Error(); res.Status != 400 || e == nil || e.Messages[0] != "Must have a token specified" {
		t.Errorf("config without token: %d %s", res.Status, res.Body)
	}
	// Actions that need the API refuse cleanly before a good config.
	res = pl.Action(t, machineAction("increment", "3e7031fe-3062-45f1-835c-92541bc9cbd3", nil))
	if res.Status != 409 {
		t.Errorf("increment before config: %d %s", res.Status, res.Body)
	}
	pl.Stop(t)
}
