package hostmodule

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
)

// TestEndToEnd drives a fake provider through a real provisiond: upload,
// content layer, custom object type, handshake, actions with param
// resolution and DRP's messages, callbacks with RS_TOKEN, publish in both
// directions, plugin-apis, config failure, token revocation, metrics.
func TestEndToEnd(t *testing.T) {
	e := startEnv(t, "", "", nil)
	code, raw := e.upload("fake", "fake", "")
	if code != 201 {
		t.Fatalf("upload: %d %s", code, raw)
	}
	var info models.PluginProviderUploadInfo
	if err := json.Unmarshal(raw, &info); err != nil || info.Path != "fake" || info.Size <= 0 {
		t.Fatalf("upload answer: %s", raw)
	}
	var pp map[string]any
	if code, raw := e.do("GET", "/api/v3/plugin_providers/fake", nil, &pp); code != 200 {
		t.Fatalf("show provider: %d %s", code, raw)
	}
	if _, has := pp["Content"]; has || len(pp["Sha256Sum"].(string)) != 64 || pp["PluginVersion"] != float64(4) {
		t.Fatalf("provider record: %v", pp)
	}
	// Content layer: params from the bundle, read-only to users.
	var param models.Param
	if code, raw := e.do("GET", "/api/v3/params/fake/step", nil, &param); code != 200 || param.Bundle != "fake" {
		t.Fatalf("layer param: %d %s", code, raw)
	}
	if code, raw := e.do("DELETE", "/api/v3/params/fake/step", nil, nil); code != 403 {
		t.Fatalf("delete of a layer object: %d %s", code, raw)
	}
	// StoreObjects kind with its schema enforced.
	if code, raw := e.do("POST", "/api/v3/fakes", map[string]any{"Id": "x"}, nil); code != 422 || !strings.Contains(string(raw), "(root): Size is required") {
		t.Fatalf("schema not enforced: %d %s", code, raw)
	}
	if code, raw := e.do("POST", "/api/v3/fakes", map[string]any{"Id": "x", "Size": 4}, nil); code != 201 {
		t.Fatalf("valid custom object: %d %s", code, raw)
	}
	if code, raw := e.do("GET", "/api/v3/fakes/bertie", nil, nil); code != 200 {
		t.Fatalf("bundled custom object: %d %s", code, raw)
	}
	// Unpacked static files.
	resp, err := http.Get(e.ts.StaticURL + "/files/plugin_providers/fake/testFile")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ImaFile v1" {
		t.Fatalf("unpacked file: %d %q", resp.StatusCode, body)
	}

	e.createPlugin("fake1", "fake", map[string]any{"fake/step": 3})
	e.waitPid("fake1")
	if errs := e.pluginErrors("fake1"); len(errs) != 0 {
		t.Fatalf("PluginErrors after a clean start: %v", errs)
	}
	var m models.Machine
	if code, raw := e.do("POST", "/api/v3/machines", map[string]any{"Name": "m1", "Params": map[string]any{"fake/step": 2}}, &m); code != 201 {
		t.Fatalf("create machine: %d %s", code, raw)
	}
	mp := "/api/v3/machines/" + m.Uuid.String()
	var list []models.AvailableAction
	if code, raw := e.do("GET", mp+"/actions", nil, &list); code != 200 {
		t.Fatalf("list actions: %d %s", code, raw)
	}
	for _, a := range list {
		if a.Command == "echo" {
			t.Fatal("echo listed although fake/required does not resolve")
		}
	}
	code, v := e.action(mp, "echo", nil)
	if code != 400 || errText(v) != "INVOKE: machines/"+m.Uuid.String()+": Action echo Missing Parameter fake/required" {
		t.Fatalf("missing param: %d %v", code, errText(v))
	}
	code, v = e.action(mp, "echo", map[string]any{"fake/step": "x", "fake/required": 1})
	want := "INVOKE: machines/" + m.Uuid.String() + ": Action echo: Invalid Parameter: fake/step: : (root): Invalid type. Expected: integer, given: string"
	if code != 400 || errText(v) != want {
		t.Fatalf("invalid param:\n got %d %s\nwant %s", code, errText(v), want)
	}
	if code, raw := e.do("POST", "/api/v3/profiles/global/params/fake/required", `"from-global"`, nil); code != 200 {
		t.Fatalf("set global param: %d %s", code, raw)
	}
	code, v = e.action(mp, "echo", map[string]any{"extra": 10})
	if code != 200 {
		t.Fatalf("echo: %d %s", code, errText(v))
	}
	ps := v.(map[string]any)["Params"].(map[string]any)
	if ps["fake/required"] != "from-global" || ps["fake/step"] != float64(2) || ps["fake/withdefault"] != float64(7) || ps["extra"] != float64(10) {
		t.Fatalf("resolved params: %v", ps)
	}
	// Secure params are stored sealed and reach the plugin decrypted, in
	// actions and in /config.
	if code, raw := e.do("POST", "/api/v3/profiles/global/params/fake/secret", `"s3cret"`, nil); code != 200 {
		t.Fatalf("set secure param: %d %s", code, raw)
	}
	var sealed any
	e.do("GET", "/api/v3/profiles/global/params/fake/secret", nil, &sealed)
	if sealed == "s3cret" {
		t.Fatal("secure param not sealed at rest")
	}
	if code, v = e.action(mp, "echo", nil); code != 200 || v.(map[string]any)["Params"].(map[string]any)["fake/secret"] != "s3cret" {
		t.Fatalf("secure param in action: %d %v", code, v)
	}
	if code, v = e.action(mp, "callback", nil); code != 200 || v != float64(2) {
		t.Fatalf("callback with RS_TOKEN: %d %v", code, errText(v))
	}
	if code, v = e.action("/api/v3/system", "status", nil); code != 200 || v != "Running" {
		t.Fatalf("system action: %d %v", code, v)
	}
	if code, v = e.action("/api/v3/fakes/bertie", "measure", nil); code != 200 || v.(map[string]any)["Size"] != float64(3) {
		t.Fatalf("custom type action: %d %v", code, v)
	}
	if code, v = e.action("/api/v3/system", "nothing", nil); code != 400 || errText(v) != "INVOKE: system/global: Action nothing on system: Not Found" {
		t.Fatalf("unknown system action: %d %v", code, errText(v))
	}

	// Publish: plugin -> bus, and bus -> HasPublish plugin (it receives
	// its own event back).
	if code, v = e.action(mp, "publish", map[string]any{"hello": "world"}); code != 200 {
		t.Fatalf("publish: %d %v", code, errText(v))
	}
	waitFor(t, 10*time.Second, "the plugin to receive its own event", func() bool {
		_, v := e.action("/api/v3/system", "events", nil)
		evs, _ := v.([]any)
		for _, ev := range evs {
			if em, _ := ev.(map[string]any); em["Type"] == "fake" && em["Action"] == "ping" {
				return true
			}
		}
		return false
	})

	// plugin-apis: authenticated, original path, caller credentials not
	// forwarded.
	code, raw = e.doRaw("POST", "/api/v3/plugin-apis/fake1/hello/there?x=1", "text/plain", []byte("hi"), "")
	var echo map[string]any
	_ = json.Unmarshal(raw, &echo)
	if code != 200 || echo["Path"] != "/api/v3/plugin-apis/fake1/hello/there" || echo["Query"] != "x=1" || echo["Body"] != "hi" || echo["Auth"] != "" {
		t.Fatalf("plugin-apis: %d %s", code, raw)
	}
	// A DRP-style error answer without a message gets one (REST clients
	// would print a bare "GET: /api/v3/..."); other bodies pass untouched.
	for path, want := range map[string]string{
		"/api/v3/plugin-apis/fake1/x/missing": `{"Model":"","Key":"/api/v3/plugin-apis/fake1/x/missing","Type":"GET",` +
			`"Messages":["No route: /api/v3/plugin-apis/fake1/x/missing on plugin fake1"],"Code":404}`,
		"/api/v3/plugin-apis/fake1/no-messages": `{"Model":"plugin","Key":"fake","Type":"GET",` +
			`"Messages":["Plugin fake1 answered /api/v3/plugin-apis/fake1/no-messages 500 Internal Server Error without a message"],"Code":500}`,
		"/api/v3/plugin-apis/fake1/with-message": `{"Code":409,"Key":"fake","Messages":["conflict on purpose"],"Model":"plugin","Type":"plugin"}`,
		"/api/v3/plugin-apis/fake1/not-an-error": `{"Code":400,"Detail":"a body of the plugin's own shape","Messages":null}`,
	} {
		code, raw := e.doRaw("GET", path, "", nil, "")
		if got := strings.TrimSpace(string(raw)); code < 400 || got != want {
			t.Errorf("plugin-apis error %s: %d\n got %s\nwant %s", path, code, got, want)
		}
	}
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/v3/plugin-apis/fake1/hello", nil)
	if resp, err := httpClient().Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("plugin-apis without credentials: %v %v", resp, err)
	}

	// Metrics.
	code, raw = e.doRaw("GET", "/metrics", "", nil, "")
	if code != 200 || !strings.Contains(string(raw), `provision_plugin_actions_total{plugin="fake1",result="ok"}`) ||
		!strings.Contains(string(raw), `provision_plugin_action_duration_seconds_bucket{plugin="fake1"`) {
		t.Fatalf("metrics: %d %.2000s", code, raw)
	}

	// The RS_TOKEN works while the plugin runs and stops working when the
	// plugin stops.
	_, tok := e.action("/api/v3/system", "token", nil)
	token := tok.(string)
	if code, raw := e.doRaw("GET", "/api/v3/machines", "", nil, token); code != 200 {
		t.Fatalf("plugin token rejected while running: %d %s", code, raw)
	}
	// A config failure stops the plugin and lands in PluginErrors, unwrapped
	// from DRP's double encoding.
	if code, raw := e.do("POST", "/api/v3/plugins/fake1/params/fake/fail-config", "true", nil); code != 200 {
		t.Fatalf("set param: %d %s", code, raw)
	}
	waitFor(t, 20*time.Second, "config failure in PluginErrors", func() bool {
		return containsAny(e.pluginErrors("fake1"), "config rejected: fake/fail-config is set")
	})
	if errs := e.pluginErrors("fake1"); strings.Contains(errs[0], `\"Model\"`) {
		t.Fatalf("PluginErrors still double-encoded: %v", errs)
	}
	if code, raw := e.doRaw("GET", "/api/v3/machines", "", nil, token); code != 401 && code != 403 {
		t.Fatalf("stopped plugin's token still works: %d %s", code, raw)
	}
	// Its actions answer 503 saying which plugin is down and why, not
	// DRP's "Not Found" (which reads like a typo in the action name).
	wantDown := "INVOKE: machines/" + m.Uuid.String() + ": Action echo on machines: plugin fake1 is not running: "
	for _, cmd := range []string{"echo", "echo?plugin=fake1"} {
		code, v := e.action(mp, cmd, nil)
		if got := errText(v); code != 503 || !strings.HasPrefix(got, wantDown) || !strings.Contains(got, "config rejected: fake/fail-config is set") {
			t.Fatalf("action %s of a plugin whose config failed: %d %s", cmd, code, got)
		}
	}
	// GET (is it available here?) stays 404, as the list omits it, and
	// says why.
	if code, raw := e.do("GET", mp+"/actions/echo", nil, nil); code != 404 || !strings.Contains(string(raw), "echo: Not Found: plugin fake1 is not running: ") {
		t.Fatalf("GET action of a plugin whose config failed: %d %s", code, raw)
	}
	if code, v := e.action(mp, "nothing", nil); code != 400 || errText(v) != "INVOKE: machines/"+m.Uuid.String()+": Action nothing on machines: Not Found" {
		t.Fatalf("an action no provider offers keeps DRP's answer: %d %s", code, errText(v))
	}
	// Fixing the params restarts it.
	if code, raw := e.do("DELETE", "/api/v3/plugins/fake1/params/fake/fail-config", nil, nil); code != 200 {
		t.Fatalf("delete param: %d %s", code, raw)
	}
	e.waitPid("fake1")
	waitFor(t, 10*time.Second, "PluginErrors cleared", func() bool { return len(e.pluginErrors("fake1")) == 0 })
}

func httpClient() *http.Client { return &http.Client{Transport: insecure(), Timeout: 30 * time.Second} }

// TestKillDuringConcurrentActions kills -9 a plugin while 100 actions are
// in flight: every caller is answered at once and the plugin comes back.
func TestKillDuringConcurrentActions(t *testing.T) {
	e := startEnv(t, "", "", map[string]string{"fake": "fake"})
	e.createPlugin("fake1", "fake", nil)
	pid := e.waitPid("fake1")
	var m models.Machine
	e.do("POST", "/api/v3/machines", map[string]any{"Name": "m1"}, &m)
	mp := "/api/v3/machines/" + m.Uuid.String()
	answers := e.sleepsInFlight(mp, 100, 30, 30*time.Second)
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, c := range answers(20*time.Second, "callers of a killed plugin were left hanging") {
		if c != 502 && c != 503 {
			t.Fatalf("caller of a killed plugin got %d, want 502/503", c)
		}
	}
	newPid := e.waitPid("fake1")
	if newPid == pid {
		t.Fatal("plugin not restarted")
	}
	if errs := e.pluginErrors("fake1"); !containsAny(errs, "exited unexpectedly (signal: killed)") {
		t.Fatalf("crash not recorded: %v", errs)
	}
	_, raw := e.doRaw("GET", "/metrics", "", nil, "")
	if !strings.Contains(string(raw), `provision_plugin_restarts_total{plugin="fake1"} 1`) {
		t.Fatalf("restart not counted in metrics")
	}
}

// TestBrokenPlugins: never READY!, garbage define, hanging action.
func TestBrokenPlugins(t *testing.T) {
	e := startEnv(t, "", "", map[string]string{"garbage": "garbage", "fake": "fake"})
	var pp models.PluginProviderInfo
	if code, raw := e.do("GET", "/api/v3/plugin_providers/garbage", nil, &pp); code != 200 || !containsAny(pp.Errors, "define printed invalid JSON") {
		t.Fatalf("garbage provider entry: %d %s", code, raw)
	}
	code, raw := e.upload("garbage2", "garbage", "")
	if code != 400 || !strings.Contains(string(raw), "Import plugin failed garbage2: define printed invalid JSON") {
		t.Fatalf("garbage upload: %d %s", code, raw)
	}
	if code, raw := e.upload("noready", "noready", ""); code != 201 {
		t.Fatalf("upload noready: %d %s", code, raw)
	}
	e.createPlugin("nr", "noready", nil)
	waitFor(t, 40*time.Second, "READY! timeout in PluginErrors", func() bool {
		return containsAny(e.pluginErrors("nr"), "no READY! within 5s")
	})
	// The server is fine, and a hanging action is answered at its timeout.
	e.createPlugin("fake1", "fake", nil)
	e.waitPid("fake1")
	var m models.Machine
	e.do("POST", "/api/v3/machines", map[string]any{"Name": "m1"}, &m)
	code, v := e.action("/api/v3/machines/"+m.Uuid.String(), "sleep?timeout=300ms", nil)
	if code != 504 || !strings.Contains(errText(v), "timed out after 300ms") {
		t.Fatalf("hanging action: %d %s", code, errText(v))
	}
	// A missing provider is reported on the plugin.
	e.createPlugin("ghost", "nosuch", nil)
	waitFor(t, 10*time.Second, "missing provider error", func() bool {
		errs := e.pluginErrors("ghost")
		return len(errs) == 1 && errs[0] == "Missing Plugin Provider: nosuch"
	})
}

// TestReplaceProviderWhileActionsRun uploads v2 while v1 runs actions:
// the in-flight actions are answered, then v2 serves.
func TestReplaceProviderWhileActionsRun(t *testing.T) {
	e := startEnv(t, "", "", map[string]string{"fake": "fake"})
	e.createPlugin("fake1", "fake", nil)
	e.waitPid("fake1")
	var m models.Machine
	e.do("POST", "/api/v3/machines", map[string]any{"Name": "m1"}, &m)
	mp := "/api/v3/machines/" + m.Uuid.String()
	answers := e.sleepsInFlight(mp, 10, 1, 20*time.Second)
	if code, raw := e.upload("fake", "fake-v2", ""); code != 201 {
		t.Fatalf("upload v2: %d %s", code, raw)
	}
	// Calls made during the switch wait for the new process rather than
	// failing.
	for i := 0; i < 5; i++ {
		if code, v := e.action("/api/v3/system", "version", nil); code != 200 {
			t.Fatalf("action during the provider switch: %d %s", code, errText(v))
		}
	}
	for _, c := range answers(60*time.Second, "in-flight actions during replacement were left hanging") {
		if c != 200 {
			t.Fatalf("in-flight action during replacement got %d, want 200 (drained)", c)
		}
	}
	waitFor(t, 20*time.Second, "v2 serving", func() bool {
		code, v := e.action("/api/v3/system", "version", nil)
		return code == 200 && v == "v2"
	})
	var pp models.PluginProviderInfo
	e.do("GET", "/api/v3/plugin_providers/fake", nil, &pp)
	if pp.Version != "v2" {
		t.Fatalf("provider record not updated: %+v", pp)
	}
	// Delete: its instance reports the missing provider; its content goes.
	if code, raw := e.do("DELETE", "/api/v3/plugin_providers/fake", nil, nil); code >= 300 {
		t.Fatalf("delete provider: %d %s", code, raw)
	}
	waitFor(t, 20*time.Second, "missing provider", func() bool {
		errs := e.pluginErrors("fake1")
		return len(errs) == 1 && errs[0] == "Missing Plugin Provider: fake"
	})
	if code, _ := e.do("GET", "/api/v3/params/fake/step", nil, nil); code != 404 {
		t.Fatalf("layer param still there after delete: %d", code)
	}
}

// TestUploadNeverDeletesUserObjects: a clash with a user object is a 409
// unless replaceWritable=true; multipart uploads work too.
func TestUploadNeverDeletesUserObjects(t *testing.T) {
	e := startEnv(t, "", "", nil)
	if code, raw := e.do("POST", "/api/v3/params", map[string]any{"Name": "fake/step", "Schema": map[string]any{"type": "string"}}, nil); code != 201 {
		t.Fatalf("create user param: %d %s", code, raw)
	}
	code, raw := e.upload("fake", "fake", "")
	if code != 409 || !strings.Contains(string(raw), "params/fake/step") {
		t.Fatalf("clash: %d %s", code, raw)
	}
	var p models.Param
	if e.do("GET", "/api/v3/params/fake/step", nil, &p); p.Bundle != "" {
		t.Fatal("user param changed by a refused upload")
	}
	if code, _ := e.do("GET", "/api/v3/plugin_providers/fake", nil, nil); code != 404 {
		t.Fatalf("refused provider recorded: %d", code)
	}
	code, raw = multipartUpload(t, e, "fake", "fake", "?replaceWritable=true")
	if code != 201 {
		t.Fatalf("replaceWritable multipart upload: %d %s", code, raw)
	}
	if e.do("GET", "/api/v3/params/fake/step", nil, &p); p.Bundle != "fake" {
		t.Fatalf("param not replaced: %+v", p)
	}
}

// TestServerRestartBringsPluginsBack restarts provisiond on the same base
// directory: providers and plugin instances come back.
func TestServerRestartBringsPluginsBack(t *testing.T) {
	base := t.TempDir()
	e := startEnv(t, base, "", nil)
	if code, raw := e.upload("fake", "fake", ""); code != 201 {
		t.Fatalf("upload: %d %s", code, raw)
	}
	e.createPlugin("fake1", "fake", nil)
	e.createPlugin("fake2", "fake", nil)
	p1 := e.waitPid("fake1")
	e.waitPid("fake2")
	pw := e.ts.AdminPassword
	e.ts.Stop(t)
	if err := syscall.Kill(int(p1), 0); err == nil {
		t.Fatal("plugin process survived the server's shutdown")
	}
	e2 := startEnv(t, base, pw, nil)
	if np := e2.waitPid("fake1"); np == p1 {
		t.Fatal("same pid after restart")
	}
	e2.waitPid("fake2")
	var pp models.PluginProviderInfo
	if code, raw := e2.do("GET", "/api/v3/plugin_providers/fake", nil, &pp); code != 200 || len(pp.Errors) != 0 {
		t.Fatalf("provider after restart: %d %s", code, raw)
	}
}

// TestLeavingWith403RemovesTheProvider: a plugin leaving with 403 (DRP's
// licence denial) takes its provider down: every instance stops and says
// why in PluginErrors, the provider record shows it, its content layer is
// gone; a new upload brings everything back. Other codes stop only the
// instance that left.
func TestLeavingWith403RemovesTheProvider(t *testing.T) {
	e := startEnv(t, "", "", map[string]string{"fake": "fake"})
	e.createPlugin("fake1", "fake", nil)
	e.createPlugin("fake2", "fake", nil)
	e.waitPid("fake1")
	e.waitPid("fake2")
	var m models.Machine
	if code, raw := e.do("POST", "/api/v3/machines", map[string]any{"Name": "m1"}, &m); code != 201 {
		t.Fatalf("create machine: %d %s", code, raw)
	}
	mp := "/api/v3/machines/" + m.Uuid.String()

	// 400: only fake2 stops.
	if code, v := e.action(mp, "leave?plugin=fake2", map[string]any{"code": 400}); code != 200 {
		t.Fatalf("leave 400: %d %s", code, errText(v))
	}
	waitFor(t, 20*time.Second, "fake2 stopped", func() bool {
		return containsAny(e.pluginErrors("fake2"), "Plugin left: plugin: plugin/fake: asked to leave")
	})
	if code, v := e.action("/api/v3/system", "pid?plugin=fake1", nil); code != 200 {
		t.Fatalf("fake1 stopped by another instance leaving with 400: %d %s", code, errText(v))
	}

	// 403: the provider goes, with both instances.
	if code, v := e.action(mp, "leave?plugin=fake1", map[string]any{"code": 403}); code != 200 {
		t.Fatalf("leave 403: %d %s", code, errText(v))
	}
	e.checkProviderRemoved(t, "Plugin provider fake removed: plugin fake1 left with 403: plugin: plugin/fake: asked to leave", "left with 403")

	// Uploading it again brings the provider and both instances back.
	if code, raw := e.upload("fake", "fake", ""); code != 201 {
		t.Fatalf("re-upload: %d %s", code, raw)
	}
	e.waitPid("fake1")
	e.waitPid("fake2")
	waitFor(t, 20*time.Second, "PluginErrors cleared", func() bool {
		return len(e.pluginErrors("fake1")) == 0 && len(e.pluginErrors("fake2")) == 0
	})
}

// checkProviderRemoved waits until instances fake1 and fake2 both report
// the fake provider missing and removed with why, then checks that the
// provider record says recordSays, its content layer is gone and fake1
// runs no actions.
func (e *env) checkProviderRemoved(t *testing.T, why, recordSays string) {
	t.Helper()
	for _, name := range []string{"fake1", "fake2"} {
		waitFor(t, 20*time.Second, name+" reporting the removed provider", func() bool {
			errs := e.pluginErrors(name)
			return containsAny(errs, "Missing Plugin Provider: fake") && containsAny(errs, why)
		})
	}
	var pp models.PluginProviderInfo
	if code, raw := e.do("GET", "/api/v3/plugin_providers/fake", nil, &pp); code != 200 || !containsAny(pp.Errors, recordSays) {
		t.Fatalf("provider record after removal: %d %s", code, raw)
	}
	if code, raw := e.do("GET", "/api/v3/params/fake/step", nil, nil); code != 404 {
		t.Fatalf("content layer of the removed provider: %d %s", code, raw)
	}
	if code, v := e.action("/api/v3/system", "pid?plugin=fake1", nil); code == 200 {
		t.Fatalf("removed provider still runs actions: %v", v)
	}
}

// TestConfig403RemovesTheProvider: a plugin answering /config with 403
// (DRP's licence denial) takes its provider down exactly like leaving
// with 403: every instance (also a running one) stops and says why, the
// provider record shows it, its content layer goes; fixing the params and
// re-uploading brings everything back.
func TestConfig403RemovesTheProvider(t *testing.T) {
	e := startEnv(t, "", "", map[string]string{"fake": "fake"})
	e.createPlugin("fake1", "fake", nil)
	e.waitPid("fake1")
	e.createPlugin("fake2", "fake", map[string]any{"fake/fail-config": 403})
	e.checkProviderRemoved(t, "Plugin provider fake removed: plugin fake2 refused /config with 403: plugin: plugin/fake: config rejected: fake/fail-config is set", "refused /config with 403")

	// Other refusal codes stop only that instance (covered for 400 by
	// TestEndToEnd); fixing the params and uploading again restores both.
	if code, raw := e.do("DELETE", "/api/v3/plugins/fake2/params/fake/fail-config", nil, nil); code != 200 {
		t.Fatalf("delete param: %d %s", code, raw)
	}
	if code, raw := e.upload("fake", "fake", ""); code != 201 {
		t.Fatalf("re-upload: %d %s", code, raw)
	}
	e.waitPid("fake1")
	e.waitPid("fake2")
	waitFor(t, 20*time.Second, "PluginErrors cleared", func() bool {
		return len(e.pluginErrors("fake1")) == 0 && len(e.pluginErrors("fake2")) == 0
	})
}
