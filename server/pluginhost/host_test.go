package pluginhost

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

// TestDiscoveryHandshakeAndBrokenProviders runs define/unpack on every
// executable of the plugin root: good providers are loaded (content layer,
// kinds, unpacked files), broken ones are reported and do not stop the
// others, and a Plugin object gets a configured process.
func TestDiscoveryHandshakeAndBrokenProviders(t *testing.T) {
	s := newFakeServer(t)
	cfg := s.config()
	os.MkdirAll(cfg.PluginRoot, 0o750)
	installBinary(t, cfg.PluginRoot, "fake", "fake")
	installBinary(t, cfg.PluginRoot, "garbage", "garbage")
	installBinary(t, cfg.PluginRoot, "badversion", "badversion")
	os.WriteFile(filepath.Join(cfg.PluginRoot, "README"), []byte("not executable"), 0o644)
	h := s.start(cfg)

	info, ok := h.Provider("fake")
	if !ok || len(info.Errors) != 0 {
		t.Fatalf("fake provider not loaded: %+v", info)
	}
	if info.Content != "" || info.Meta["DisplayName"] != "Fake" || info.Meta["Type"] != "plugin" || info.Meta["Source"] != "FromPluginProvider" {
		t.Fatalf("provider view wrong: content=%q meta=%v", info.Content, info.Meta)
	}
	if len(info.Sha256Sum) != 64 {
		t.Fatalf("sha256 not recorded: %q", info.Sha256Sum)
	}
	for _, a := range info.AvailableActions {
		if a.Provider != "fake" || a.RequiredParams == nil || a.OptionalParams == nil {
			t.Fatalf("action not filled: %+v", a)
		}
	}
	g, ok := h.Provider("garbage")
	if !ok || len(g.Errors) == 0 || !strings.Contains(g.Errors[0], "invalid JSON") {
		t.Fatalf("garbage provider not reported: %+v", g)
	}
	b, ok := h.Provider("badversion")
	if !ok || len(b.Errors) == 0 || !strings.Contains(b.Errors[0], "PluginVersion 3") {
		t.Fatalf("bad version not reported: %+v", b)
	}
	if s.bus.find("plugin_providers", "error", "garbage") == nil {
		t.Fatal("no event for the broken provider")
	}
	if _, ok := h.Provider("README"); ok {
		t.Fatal("non-executable file treated as a provider")
	}
	data, err := os.ReadFile(filepath.Join(cfg.FileRoot, "files", "plugin_providers", "fake", "testFile"))
	if err != nil || string(data) != "ImaFile v1" {
		t.Fatalf("unpack: %q %v", data, err)
	}
	s.mu.Lock()
	layer := s.layers["fake"]
	validate := s.kinds["fakes"]
	s.mu.Unlock()
	if layer == nil || layer.Meta.Name != "fake" || layer.Meta.Type != "plugin" || layer.Sections["params"]["fake/step"] == nil {
		t.Fatalf("content layer wrong: %+v", layer)
	}
	if validate == nil {
		t.Fatal("kind fakes not registered")
	}
	if err := validate(models.RawModel{"Id": "x", "Type": "fakes"}); err == nil || !strings.Contains(err.Error(), "(root): Size is required") {
		t.Fatalf("isrequired not enforced: %v", err)
	}
	if err := validate(models.RawModel{"Id": "x", "Size": "big"}); err == nil || !strings.Contains(err.Error(), "Size: Invalid type. Expected: integer, given: string") {
		t.Fatalf("type not enforced: %v", err)
	}
	if err := validate(models.RawModel{"Id": "x", "Size": 2}); err != nil {
		t.Fatal(err)
	}

	s.savePlugin(&models.Plugin{Name: "fake1", Provider: "fake", Params: map[string]any{"fake/step": 3}})
	waitRunning(t, h, "fake1")
	if e := s.bus.find("plugins", "configed", "fake1"); e == nil {
		t.Fatal("no plugins.configed event")
	}
	if errs := s.pluginErrors("fake1"); len(errs) != 0 {
		t.Fatalf("PluginErrors after a clean start: %v", errs)
	}
	got, merr := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "config"})
	if merr != nil {
		t.Fatal(merr)
	}
	if m, _ := got.(map[string]any); m["fake/step"] != float64(3) || m["Name"] != "fake1" || len(m) != 2 {
		t.Fatalf("config body: want the Plugin's params plus Name, got %v", got)
	}
	if p, _ := s.GetPlugin(context.Background(), "fake1"); p == nil || p.Params["Name"] != nil {
		t.Fatalf("Name leaked into the stored Plugin params: %+v", p)
	}
	got, merr = runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "status"})
	if merr != nil || got != "Running" {
		t.Fatalf("system action: %v %v", got, merr)
	}
}

// TestActionParamResolution covers §5.4: body, object, profiles, global,
// schema defaults, validation and DRP's error messages.
func TestActionParamResolution(t *testing.T) {
	s, h, _ := runningPlugin(t, "fake", &models.Plugin{Name: "fake1", Provider: "fake"}, nil)
	s.mu.Lock()
	s.profiles["rack"] = &models.Profile{Name: "rack", Params: map[string]any{}}
	s.mu.Unlock()
	m := s.addMachine("m1", map[string]any{"fake/step": 2}, "rack")
	id := m.Uuid.String()
	ctx := context.Background()

	list, err := h.ListActions(ctx, "machines", id, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if a.Command == "echo" {
			t.Fatal("echo listed although fake/required does not resolve")
		}
	}
	_, err = h.GetAction(ctx, "machines", id, "echo", "")
	if me, ok := err.(*models.Error); !ok || me.Code != 400 || me.Error() != "GET: machines/"+id+": Action echo Missing Parameter fake/required" {
		t.Fatalf("GetAction unresolvable: %v", err)
	}
	_, merr := runAction(t, h, ActionRequest{Prefix: "machines", ID: id, Command: "echo"})
	if merr == nil || merr.Code != 400 || merr.Error() != "INVOKE: machines/"+id+": Action echo Missing Parameter fake/required" {
		t.Fatalf("missing required: %v", merr)
	}
	// Profile supplies the required param.
	s.mu.Lock()
	s.profiles["rack"].Params["fake/required"] = "from-profile"
	s.profiles["global"].Params["fake/secret"] = "s3cret"
	s.mu.Unlock()
	list, _ = h.ListActions(ctx, "machines", id, "")
	found := false
	for _, a := range list {
		found = found || a.Command == "echo"
	}
	if !found {
		t.Fatalf("echo not listed once resolvable: %+v", list)
	}
	got, merr := runAction(t, h, ActionRequest{Prefix: "machines", ID: id, Command: "echo", Params: map[string]any{"extra": 10}})
	if merr != nil {
		t.Fatal(merr)
	}
	res := got.(map[string]any)
	ps := res["Params"].(map[string]any)
	if ps["fake/required"] != "from-profile" || ps["fake/step"] != float64(2) || ps["fake/withdefault"] != float64(7) ||
		ps["extra"] != float64(10) || ps["fake/secret"] != "s3cret" || res["Plugin"] != "fake1" {
		t.Fatalf("resolved params wrong: %v", res)
	}
	if res["Model"].(map[string]any)["Uuid"] != id {
		t.Fatalf("model not passed: %v", res["Model"])
	}
	ev := s.bus.find("machines", "echo", id)
	if ev == nil {
		t.Fatal("no invocation event")
	}
	if a := ev.Object.(*models.Action); a.Params["fake/secret"] != "*****" {
		t.Fatalf("secure param not masked in event: %v", a.Params["fake/secret"])
	}
	// Body wins and is validated against the param schema.
	_, merr = runAction(t, h, ActionRequest{Prefix: "machines", ID: id, Command: "echo", Params: map[string]any{"fake/step": "x"}})
	want := "INVOKE: machines/" + id + ": Action echo: Invalid Parameter: fake/step: : (root): Invalid type. Expected: integer, given: string"
	if merr == nil || merr.Code != 400 || merr.Error() != want {
		t.Fatalf("invalid param:\n got %v\nwant %s", merr, want)
	}
	_, merr = runAction(t, h, ActionRequest{Prefix: "machines", ID: id, Command: "explode"})
	if merr == nil || merr.Error() != "INVOKE: machines/"+id+": Action explode on machines: Not Found" {
		t.Fatalf("unknown command: %v", merr)
	}
	_, merr = runAction(t, h, ActionRequest{Prefix: "machines", ID: id, Command: "echo", Plugin: "other"})
	if merr == nil || merr.Error() != "INVOKE: machines/"+id+": Action echo on machines for plugin other not found" {
		t.Fatalf("unknown plugin: %v", merr)
	}
	_, merr = runAction(t, h, ActionRequest{Prefix: "machines", ID: "nope", Command: "echo"})
	if merr == nil || merr.Code != 404 {
		t.Fatalf("missing object: %v", merr)
	}
	_, merr = runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "command"})
	if merr == nil || merr.Error() != "INVOKE: system/global: Action command on system: Not Found" {
		t.Fatalf("unknown system action: %v", merr)
	}
	// A plugin's own error passes through with its code.
	_, merr = runAction(t, h, ActionRequest{Prefix: "machines", ID: id, Command: "fail"})
	if merr == nil || merr.Code != 409 || merr.Messages[0] != "fail on purpose" {
		t.Fatalf("plugin error: %v", merr)
	}
	// StoreObjects types have actions too.
	got, merr = runAction(t, h, ActionRequest{Prefix: "fakes", ID: "bertie", Command: "measure", Params: map[string]any{"fake/step": 5}})
	if merr != nil || got.(map[string]any)["Size"] != float64(3) {
		t.Fatalf("kind action: %v %v", got, merr)
	}
	// Callback into the API with RS_TOKEN.
	got, merr = runAction(t, h, ActionRequest{Prefix: "machines", ID: id, Command: "callback"})
	if merr != nil || got != float64(2) {
		t.Fatalf("callback: %v %v", got, merr)
	}
}

// TestActionTimeoutAndCancel: a hanging action is answered with 504 at the
// timeout, a cancelled caller stops the call, and the plugin stays healthy.
func TestActionTimeoutAndCancel(t *testing.T) {
	s, h, _ := runningPlugin(t, "fake", &models.Plugin{Name: "fake1", Provider: "fake"}, nil)
	m := s.addMachine("m1", nil)
	_, merr := runAction(t, h, ActionRequest{Prefix: "machines", ID: m.Uuid.String(), Command: "sleep", Timeout: 200 * time.Millisecond})
	if merr == nil || merr.Code != 504 || !strings.Contains(merr.Messages[0], "timed out after 200ms") {
		t.Fatalf("timeout: %v", merr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.RunAction(ctx, ActionRequest{Prefix: "machines", ID: m.Uuid.String(), Command: "sleep"})
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("cancelled action succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled action did not return")
	}
	got, merr := runAction(t, h, ActionRequest{Prefix: SystemPrefix, Command: "status"})
	if merr != nil || got != "Running" {
		t.Fatalf("plugin unhealthy after timeouts: %v %v", got, merr)
	}
}
