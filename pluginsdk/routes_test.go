package pluginsdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
)

// actor exercises config, action and stop.
type actor struct {
	configErr *models.Error
	params    atomic.Pointer[map[string]any]
	stopped   atomic.Bool
}

func (a *actor) Config(ctx context.Context, l *slog.Logger, c *client.Client, params map[string]any) *models.Error {
	a.params.Store(&params)
	l.Info("config called", "count", len(params))
	return a.configErr
}

func (a *actor) Action(ctx context.Context, l *slog.Logger, act *models.Action) (any, *models.Error) {
	switch act.Command {
	case "echo":
		return act.Params, nil
	case "fail":
		return nil, &models.Error{Model: "plugin", Key: "sdktest", Type: "plugin", Code: 409, Messages: []string{"nope"}}
	case "fail0":
		return nil, &models.Error{Type: "plugin", Messages: []string{"no code"}}
	case "panic":
		panic("boom")
	case "chan":
		return make(chan int), nil
	case "publish":
		err := pluginsdk.Publish(ctx, &models.Event{Type: "cows", Action: "moo", Key: "daisy", Object: map[string]any{"loud": true}})
		if err != nil {
			return nil, models.NewError("plugin", 500, "publish: %v", err)
		}
		return "published", nil
	case "leave":
		if err := pluginsdk.Leaving(ctx, models.NewError("plugin", 403, "license gone")); err != nil {
			return nil, models.NewError("plugin", 500, "leaving: %v", err)
		}
		return "left", nil
	case "float":
		return 0.1234567891, nil
	case "trace":
		l.Log(ctx, pluginsdk.LevelTrace, "tracing "+act.Plugin)
		return nil, nil
	case "html":
		return "<a&b>", nil
	}
	return nil, models.NewError("plugin", 404, "Unknown command: %s", act.Command)
}

func (a *actor) Stop(ctx context.Context, l *slog.Logger) { a.stopped.Store(true) }

func start(t *testing.T, impl any, def *models.PluginProvider) *plugintest.Plugin {
	t.Helper()
	if def == nil {
		def = testDef()
	}
	return plugintest.StartApp(t, pluginsdk.InitApp(def.Name, "test", def.Version, def, impl), nil)
}

// request sends one request and fails the test unless the plugin answers
// within plugintest.DefaultWait.
func request(t *testing.T, pl *plugintest.Plugin, method, path, ct, body string) *plugintest.Response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), plugintest.DefaultWait)
	defer cancel()
	res, err := pl.Request(ctx, method, path, ct, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

func expect(t *testing.T, res *plugintest.Response, status int, body string) {
	t.Helper()
	if res.Status != status || string(res.Body) != body+"\n" {
		t.Errorf("got %d %s; want %d %s", res.Status, res.Body, status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestRouteRules(t *testing.T) {
	a := &actor{}
	pl := start(t, a, nil)
	const cfg = pluginsdk.ConfigPath

	for _, m := range []string{"GET", "PUT", "DELETE", "PATCH"} {
		expect(t, request(t, pl, m, cfg, "application/json", ""), 404,
			`{"Model":"","Key":"/api-plugin/v4/config","Type":"`+m+`","Messages":null,"Code":404}`)
	}
	expect(t, request(t, pl, "POST", "/api-plugin/v4/nothing", "application/json", "{}"), 404,
		`{"Model":"","Key":"/api-plugin/v4/nothing","Type":"POST","Messages":null,"Code":404}`)
	// No Publisher and no HasPublish: no publish route.
	expect(t, request(t, pl, "POST", pluginsdk.PublishPath, "application/json", "{}"), 404,
		`{"Model":"","Key":"/api-plugin/v4/publish","Type":"POST","Messages":null,"Code":404}`)
	// Passthrough without an APIProvider is not found either.
	if res := request(t, pl, "GET", "/api/v3/plugin-apis/x/y", "", ""); res.Status != 404 {
		t.Errorf("plugin-apis without APIProvider: %d", res.Status)
	}

	expect(t, request(t, pl, "POST", cfg, "text/plain", "{}"), 400,
		`{"Model":"","Key":"","Type":"POST","Messages":["Invalid content type: text/plain"],"Code":400}`)
	expect(t, request(t, pl, "POST", cfg, "", "{}"), 400,
		`{"Model":"","Key":"","Type":"POST","Messages":["Invalid content type: "],"Code":400}`)
	res := request(t, pl, "POST", cfg, "application/json", `{"a":`)
	if e := res.Error(); res.Status != 400 || e == nil || e.Type != "POST" || len(e.Messages) != 1 {
		t.Errorf("bad JSON: %d %s", res.Status, res.Body)
	}
	if a.params.Load() != nil {
		t.Error("Config called despite a bad request")
	}

	// Empty body = zero value; the content type check is case-insensitive.
	expect(t, request(t, pl, "POST", cfg, "Application/JSON; charset=utf-8", ""), 200,
		`{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`)
	if p := a.params.Load(); p == nil || *p != nil {
		t.Errorf("empty body did not give a nil params map: %v", p)
	}
	expect(t, request(t, pl, "POST", cfg, "application/json", `{"x":1}`), 200,
		`{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`)
	if p := a.params.Load(); p == nil || (*p)["x"] != 1.0 {
		t.Errorf("params: %v", p)
	}
	// An empty action body reaches Action as the zero Action.
	expect(t, request(t, pl, "POST", pluginsdk.ActionPath, "application/json", ""), 404,
		`{"Model":"","Key":"","Type":"plugin","Messages":["Unknown command: "],"Code":404}`)
	pl.Stop(t)
}

func TestLogRequestHeaders(t *testing.T) {
	pl := start(t, &actor{}, nil)
	post := func(plugin string, hdr map[string]string) {
		t.Helper()
		body, _ := json.Marshal(&models.Action{Command: "trace", Plugin: plugin})
		ctx, cancel := context.WithTimeout(context.Background(), plugintest.DefaultWait)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://unix"+pluginsdk.ActionPath, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if res, err := pl.Do(req); err != nil || res.Status != 200 {
			t.Fatalf("trace action: %v %v", res, err)
		}
	}
	post("plain", nil)
	post("traced", map[string]string{"X-Log-Request": "trace", "X-Log-Token": "corr-42"})
	post("badlevel", map[string]string{"X-Log-Request": "loud"})
	pl.Host.WaitForMessage(t, 0, "tracing traced")
	pl.Host.WaitForMessage(t, 0, "Log token: corr-42")
	pl.Host.WaitForMessage(t, 0, "invalid X-Log-Request level")
	pl.Stop(t)
	for _, l := range pl.Host.Lines() {
		if l.Message == "tracing plain" || l.Message == "tracing badlevel" {
			t.Errorf("trace line shipped without X-Log-Request: %+v", l)
		}
	}
}

func TestActionEncoding(t *testing.T) {
	pl := start(t, &actor{}, nil)
	act := func(cmd string, params map[string]any) *plugintest.Response {
		return pl.Action(t, &models.Action{Command: cmd, Params: params})
	}
	expect(t, act("echo", map[string]any{"n": 2, "s": "x"}), 200, `{"n":2,"s":"x"}`)
	expect(t, act("fail", nil), 409, `{"Model":"plugin","Key":"sdktest","Type":"plugin","Messages":["nope"],"Code":409}`)
	// Code 0 would crash DRP's handler (kb-00041); it is answered as 500.
	expect(t, act("fail0", nil), 500, `{"Model":"","Key":"","Type":"plugin","Messages":["no code"],"Code":500}`)
	expect(t, act("html", nil), 200, `"<a&b>"`)
	expect(t, act("float", nil), 200, `0.1234567891`)
	res := act("chan", nil)
	if e := res.Error(); res.Status != 500 || e == nil || !strings.Contains(e.Messages[0], "cannot encode") {
		t.Errorf("unencodable result: %d %s", res.Status, res.Body)
	}
	res = act("panic", nil)
	e := res.Error()
	if res.Status != 500 || e == nil || e.Code != 500 || e.Type != "POST" || e.Key != pluginsdk.ActionPath ||
		e.Messages[0] != "Panic recovered: boom" || e.Messages[1] != "Stack trace:" || len(e.Messages) < 4 {
		t.Errorf("panic: %d %s", res.Status, res.Body)
	}
	// The plugin survives the panic.
	expect(t, act("echo", nil), 200, `null`)
	pl.Host.WaitForLine(t, 0, func(l models.LogLine) bool {
		return l.Level == "error" && strings.Contains(l.Message, "handler panicked")
	})
}

func TestConfigErrorEncoding(t *testing.T) {
	for _, tc := range []struct {
		err    *models.Error
		status int
	}{
		{&models.Error{Model: "plugin", Key: "k", Type: "plugin", Code: 403, Messages: []string{"license"}}, 403},
		{&models.Error{Type: "plugin", Messages: []string{"zero"}}, 500},
	} {
		pl := start(t, &actor{configErr: tc.err}, nil)
		res := pl.Config(t, map[string]any{})
		inner, _ := json.Marshal(tc.err)
		want, _ := json.Marshal(&models.Error{Code: tc.status, Messages: []string{string(inner)}})
		expect(t, res, tc.status, string(want))
		if got := res.ConfigError(); got == nil || got.Messages[0] != tc.err.Messages[0] {
			t.Errorf("ConfigError: %+v", got)
		}
		pl.Stop(t)
	}
}

func TestStopDeliversAnswerThenExits(t *testing.T) {
	a := &actor{}
	pl := start(t, a, nil)
	res := pl.Stop(t) // fails unless the process exits with status 0
	expect(t, res, 200, `{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`)
	if !a.stopped.Load() {
		t.Error("Stopper not called")
	}
	pl.Host.WaitForMessage(t, 0, "STOPPING")
	ctx, cancel := context.WithTimeout(context.Background(), plugintest.DefaultWait)
	defer cancel()
	if _, err := pl.Request(ctx, "POST", pluginsdk.ConfigPath, "application/json", nil); err == nil {
		t.Error("plugin still serves after stop")
	}
}

func TestHostHelpers(t *testing.T) {
	pl := start(t, &actor{}, nil)
	expect(t, pl.Action(t, &models.Action{Command: "publish"}), 200, `"published"`)
	ev := pl.Host.WaitForEvent(t, 0, func(e models.Event) bool { return e.Type == "cows" })
	if ev.Action != "moo" || ev.Key != "daisy" || ev.Time.IsZero() {
		t.Errorf("published event: %+v", ev)
	}
	expect(t, pl.Action(t, &models.Action{Command: "leave"}), 200, `"left"`)
	if l := pl.Host.WaitForLeaving(t, 0); l.Code != 403 || l.Messages[0] != "license gone" {
		t.Errorf("leaving: %+v", l)
	}
	if err := pluginsdk.Publish(context.Background(), &models.Event{}); !errors.Is(err, pluginsdk.ErrNoHost) {
		t.Errorf("Publish without host: %v", err)
	}
	if err := pluginsdk.Leaving(context.Background(), nil); !errors.Is(err, pluginsdk.ErrNoHost) {
		t.Errorf("Leaving without host: %v", err)
	}
	pl.Stop(t)
	if r := pl.Host.Rejected(); len(r) != 0 {
		t.Errorf("host refused: %v", r)
	}
}

// publisher is a HasPublish provider.
type publisher struct {
	configOnly
	got atomic.Int32
}

func (p *publisher) Publish(ctx context.Context, l *slog.Logger, e *models.Event) *models.Error {
	p.got.Add(1)
	l.Info("saw event", "key", e.Key)
	if e.Key == "bad" {
		return &models.Error{Type: "plugin", Code: 422, Messages: []string{"bad event"}}
	}
	return nil
}

func TestPublishRoute(t *testing.T) {
	def := testDef()
	def.HasPublish = true
	p := &publisher{}
	pl := start(t, p, def)
	expect(t, pl.Publish(t, &models.Event{Type: "machines", Action: "save", Key: "m1"}), 200,
		`{"Model":"","Key":"","Type":"","Messages":null,"Code":200}`)
	res := pl.Publish(t, &models.Event{Type: "machines", Action: "save", Key: "bad"})
	if inner := res.ConfigError(); res.Status != 422 || inner == nil || inner.Messages[0] != "bad event" {
		t.Errorf("publish error: %d %s", res.Status, res.Body)
	}
	// Lines logged inside Publish are not republished as events.
	l := pl.Host.WaitForMessage(t, 0, "saw event key=m1")
	if !l.IgnorePublish || l.Service != "sdktest" || l.Level != "info" {
		t.Errorf("publish log line: %+v", l)
	}
	if p.got.Load() != 2 {
		t.Errorf("Publish called %d times", p.got.Load())
	}
	pl.Stop(t)

	// Without HasPublish the route does not exist.
	pl = start(t, &publisher{}, nil)
	if res := pl.Publish(t, &models.Event{}); res.Status != 404 {
		t.Errorf("publish without HasPublish: %d", res.Status)
	}
	pl.Stop(t)
}

// selectorOnly has an EventSelector but no Publisher.
type selectorOnly struct{ configOnly }

func (selectorOnly) SelectEvents(context.Context, *slog.Logger) []string {
	return []string{"machines.*.*"}
}

// selectorPublisher has both.
type selectorPublisher struct {
	publisher
}

func (*selectorPublisher) SelectEvents(context.Context, *slog.Logger) []string {
	return []string{"machines.*.*"}
}

func TestEventWiringErrors(t *testing.T) {
	pl := start(t, selectorOnly{}, nil)
	expect(t, pl.Config(t, nil), 400,
		`{"Model":"plugin","Key":"unknown","Type":"plugin","Messages":["Plugin can has an EventSelector, but no Publish function: sdktest"],"Code":400}`)
	pl.Stop(t)

	def := testDef()
	def.HasPublish = true
	pl = start(t, &selectorPublisher{}, def)
	expect(t, pl.Config(t, nil), 400,
		`{"Model":"plugin","Key":"unknown","Type":"plugin","Messages":["Plugin can NOT have both HasPublish and EventSelector: sdktest"],"Code":400}`)
	// An EventSelector provider never gets the publish route.
	if res := pl.Publish(t, &models.Event{}); res.Status != 404 {
		t.Errorf("publish route registered for an EventSelector: %d", res.Status)
	}
	pl.Stop(t)

	// Stream failure: nothing listens on the default plugintest endpoint.
	pl = start(t, &selectorPublisher{}, nil)
	res := pl.Config(t, nil)
	if e := res.Error(); res.Status != 500 || e == nil || e.Type != "plugins" ||
		!strings.HasPrefix(e.Messages[0], "Unable to create event stream: ") {
		t.Errorf("unreachable websocket: %d %s", res.Status, res.Body)
	}
	pl.Stop(t)
}

// apiPlugin serves passthrough requests.
type apiPlugin struct{ configOnly }

func (apiPlugin) PluginAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := pluginsdk.Publish(r.Context(), &models.Event{Type: "api", Action: "hit", Key: r.URL.Path}) == nil
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path+" host="+map[bool]string{true: "yes", false: "no"}[host])
	})
}

func TestPluginAPI(t *testing.T) {
	pl := start(t, apiPlugin{}, nil)
	res := request(t, pl, "DELETE", "/api/v3/plugin-apis/inst/things/1", "", "")
	if res.Status != 200 || string(res.Body) != "DELETE /api/v3/plugin-apis/inst/things/1 host=yes" {
		t.Errorf("passthrough: %d %s", res.Status, res.Body)
	}
	// DRP's reverse proxy prefixes the socket path; it is stripped.
	res = request(t, pl, "GET", "/"+pl.ToPath+"/api/v3/plugin-apis/inst/status", "", "")
	if res.Status != 200 || string(res.Body) != "GET /api/v3/plugin-apis/inst/status host=yes" {
		t.Errorf("DRP-style passthrough: %d %s", res.Status, res.Body)
	}
	// Other paths keep DRP's rules.
	if res := request(t, pl, "GET", "/api/v3/other", "", ""); res.Status != 404 {
		t.Errorf("non-passthrough path: %d", res.Status)
	}
	pl.Host.WaitForEvent(t, 0, func(e models.Event) bool { return e.Key == "/api/v3/plugin-apis/inst/status" })
	pl.Stop(t)
}
