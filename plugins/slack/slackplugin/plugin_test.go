package slackplugin

import (
	"context"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/fakewait"
	"github.com/provisionhq/provision/plugins/slack/internal/slackfake"
	"github.com/provisionhq/provision/pluginsdk/content"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
	"gopkg.in/yaml.v3"
)

const testToken = "xoxb-test-1234"

// quiet is a logger that drops everything, for tests that do not look at logs.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestPlugin(t *testing.T, opts Options) (*Plugin, *fakewait.Recorder) {
	t.Helper()
	rec := &fakewait.Recorder{}
	opts.Notifier.Wait = rec.Wait
	opts.Notifier.Logger = quiet()
	p := New(opts)
	t.Cleanup(func() { p.Stop(context.Background(), quiet()) })
	return p, rec
}

func machineEvent(action, name string) *models.Event {
	return &models.Event{
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Type: "machines", Action: action,
		Key: "3e7031fe-3062-45f1-835c-92541bc9cbd3", Principal: "user:rocketskates",
		Object: map[string]any{"Name": name, "Uuid": "3e7031fe-3062-45f1-835c-92541bc9cbd3"},
	}
}

func TestDefinitionKeepsDRPNames(t *testing.T) {
	d := Definition("v1.2.3")
	if d.Name != "slack" || d.PluginVersion != 4 || d.HasPublish || d.Version != "v1.2.3" {
		t.Fatalf("definition: %+v", d)
	}
	if len(d.RequiredParams) != 0 {
		t.Fatalf("no plugin-level required params expected, got %v", d.RequiredParams)
	}
	if len(d.AvailableActions) != 1 || d.AvailableActions[0].Command != "slack-notify" || d.AvailableActions[0].Model != "" ||
		!reflect.DeepEqual(d.AvailableActions[0].RequiredParams, []string{"slack/message"}) {
		t.Fatalf("actions: %+v", d.AvailableActions)
	}
}

func TestBotTokenPublishesSelectedEvents(t *testing.T) {
	fs := slackfake.NewSlack(t, testToken)
	p, _ := newTestPlugin(t, Options{SlackAPIURL: fs.URL()})
	ctx := context.Background()

	if err := p.Config(ctx, quiet(), nil, map[string]any{
		ParamBotKey: testToken, ParamChannel: "C0123", ParamEvents: []any{"machines.create.*"},
	}); err != nil {
		t.Fatalf("Config: %v", err)
	}
	if got := p.SelectEvents(ctx, quiet()); !reflect.DeepEqual(got, []string{"machines.create.*"}) {
		t.Fatalf("SelectEvents = %v", got)
	}
	// Not selected: must not be posted. Sent first so that, the worker being
	// FIFO, its absence is certain once the selected one has arrived.
	if err := p.Publish(ctx, quiet(), machineEvent("update", "node-0")); err != nil {
		t.Fatalf("Publish(update): %v", err)
	}
	if err := p.Publish(ctx, quiet(), machineEvent("create", "node-1")); err != nil {
		t.Fatalf("Publish(create): %v", err)
	}
	plugintest.Eventually(t, 10*time.Second, "one chat.postMessage", func() bool { return len(fs.Posts()) >= 1 })
	posts := fs.Posts()
	if len(posts) != 1 {
		t.Fatalf("want exactly 1 post, got %d: %v", len(posts), posts)
	}
	want := "*machines create* 3e7031fe-3062-45f1-835c-92541bc9cbd3 (node-1) by user:rocketskates"
	if got := posts[0].Get("text"); got != want {
		t.Fatalf("text = %q, want %q", got, want)
	}
	if got := posts[0].Get("channel"); got != "C0123" {
		t.Fatalf("channel = %q", got)
	}
	plugintest.Eventually(t, 10*time.Second, "the delivery to be counted", func() bool { return p.Stats().Delivered == 1 })
	if st := p.Stats(); st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAPIURLParam: slack/api-url (here without a trailing slash) sends the
// bot's calls to another Web API, e.g. GovSlack's or a test server.
func TestAPIURLParam(t *testing.T) {
	fs := slackfake.NewSlack(t, testToken)
	p, _ := newTestPlugin(t, Options{})
	ctx := context.Background()
	if err := p.Config(ctx, quiet(), nil, map[string]any{
		ParamBotKey: testToken, ParamChannel: "#ops", ParamAPIURL: strings.TrimSuffix(fs.URL(), "/"),
	}); err != nil {
		t.Fatalf("Config: %v", err)
	}
	if fs.AuthCalls() != 1 {
		t.Fatalf("auth.test calls %d", fs.AuthCalls())
	}
	if _, err := p.Action(ctx, quiet(), &models.Action{Command: ActionNotify, Params: map[string]any{ParamMessage: "hi"}}); err != nil {
		t.Fatalf("slack-notify: %v", err)
	}
	if texts := fs.Texts(); len(texts) != 1 || texts[0] != "hi" || fs.Posts()[0].Get("channel") != "#ops" {
		t.Fatalf("posts %v", fs.Posts())
	}
}

func TestDefaultEventsAndCustomTemplate(t *testing.T) {
	wh := slackfake.NewWebhook(t)
	p, _ := newTestPlugin(t, Options{HTTPClient: wh.Client()})
	ctx := context.Background()
	if err := p.Config(ctx, quiet(), nil, map[string]any{
		ParamWebhookURL: wh.URL(),
		ParamTemplate:   `{{.Type}}/{{.Action}}/{{.Name}}/{{index .Object "Uuid"}}`,
	}); err != nil {
		t.Fatalf("Config: %v", err)
	}
	if got := p.SelectEvents(ctx, quiet()); !reflect.DeepEqual(got, []string{"machines.create.*", "machines.delete.*", "plugins.stopped.*"}) {
		t.Fatalf("default SelectEvents = %v", got)
	}
	if err := p.Publish(ctx, quiet(), machineEvent("delete", "node-2")); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, quiet(), &models.Event{Type: "plugins", Action: "stopped", Key: "ipmi", Object: map[string]any{"Name": "ipmi"}}); err != nil {
		t.Fatal(err)
	}
	plugintest.Eventually(t, 10*time.Second, "two webhook posts", func() bool { return len(wh.Bodies()) >= 2 })
	b := wh.Bodies()
	if b[0]["text"] != "machines/delete/node-2/3e7031fe-3062-45f1-835c-92541bc9cbd3" || b[1]["text"] != "plugins/stopped/ipmi/<no value>" {
		t.Fatalf("posted bodies: %v", b)
	}
}

func TestWebhookRetryAfterThenSuccess(t *testing.T) {
	wh := slackfake.NewWebhook(t)
	wh.RateLimit(1, "3")
	p, rec := newTestPlugin(t, Options{HTTPClient: wh.Client()})
	ctx := context.Background()
	if err := p.Config(ctx, quiet(), nil, map[string]any{ParamWebhookURL: wh.URL()}); err != nil {
		t.Fatalf("Config: %v", err)
	}
	if err := p.Publish(ctx, quiet(), machineEvent("create", "node-3")); err != nil {
		t.Fatal(err)
	}
	plugintest.Eventually(t, 10*time.Second, "webhook delivery", func() bool { return p.Stats().Delivered == 1 })
	if wh.Requests() != 2 {
		t.Fatalf("want 2 requests (429 then 200), got %d", wh.Requests())
	}
	if got := rec.Waits(); !reflect.DeepEqual(got, []time.Duration{3 * time.Second}) {
		t.Fatalf("waits = %v, want the Retry-After of 3s", got)
	}
	if b := wh.Bodies(); len(b) != 1 || !strings.Contains(b[0]["text"].(string), "(node-3)") {
		t.Fatalf("bodies %v", b)
	}
}

func TestBotRetryAfterThenSuccess(t *testing.T) {
	fs := slackfake.NewSlack(t, testToken)
	fs.RateLimit(2, "7")
	p, rec := newTestPlugin(t, Options{SlackAPIURL: fs.URL()})
	ctx := context.Background()
	if err := p.Config(ctx, quiet(), nil, map[string]any{ParamBotKey: testToken, ParamChannel: "#ops"}); err != nil {
		t.Fatalf("Config: %v", err)
	}
	got, merr := p.Action(ctx, quiet(), &models.Action{Command: ActionNotify, Params: map[string]any{ParamMessage: "deploy done"}})
	if merr != nil || got != "Posted" {
		t.Fatalf("Action = %v, %v", got, merr)
	}
	if posts := fs.Posts(); len(posts) != 1 || posts[0].Get("text") != "deploy done" || posts[0].Get("channel") != "#ops" {
		t.Fatalf("posts %v", posts)
	}
	if w := rec.Waits(); !reflect.DeepEqual(w, []time.Duration{7 * time.Second, 7 * time.Second}) {
		t.Fatalf("waits = %v", w)
	}
}

func TestBackoffOnServerErrorsAndGiveUp(t *testing.T) {
	wh := slackfake.NewWebhook(t)
	wh.FailWith(http.StatusBadGateway)
	p, rec := newTestPlugin(t, Options{HTTPClient: wh.Client(), Notifier: NotifierOptions{MaxAttempts: 4, BaseBackoff: time.Second}})
	ctx := context.Background()
	if err := p.Config(ctx, quiet(), nil, map[string]any{ParamWebhookURL: wh.URL()}); err != nil {
		t.Fatal(err)
	}
	_, merr := p.Action(ctx, quiet(), &models.Action{Command: ActionNotify, Params: map[string]any{ParamMessage: "x"}})
	if merr == nil || merr.Code != http.StatusConflict || !strings.Contains(merr.Messages[0], "502") {
		t.Fatalf("want 409 naming the 502, got %v", merr)
	}
	if strings.Contains(merr.Error(), "secretXYZ") {
		t.Fatalf("error leaks the webhook URL: %v", merr)
	}
	if wh.Requests() != 4 {
		t.Fatalf("want 4 attempts, got %d", wh.Requests())
	}
	if w := rec.Waits(); !reflect.DeepEqual(w, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}) {
		t.Fatalf("backoff waits = %v", w)
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	wh := slackfake.NewWebhook(t)
	wh.FailWith(http.StatusForbidden)
	p, rec := newTestPlugin(t, Options{HTTPClient: wh.Client()})
	ctx := context.Background()
	if err := p.Config(ctx, quiet(), nil, map[string]any{ParamWebhookURL: wh.URL()}); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, quiet(), machineEvent("create", "n")); err != nil {
		t.Fatal(err)
	}
	plugintest.Eventually(t, 10*time.Second, "failure recorded", func() bool { return p.Stats().Failed == 1 })
	if wh.Requests() != 1 || len(rec.Waits()) != 0 {
		t.Fatalf("403 retried: %d requests, waits %v", wh.Requests(), rec.Waits())
	}

	fs := slackfake.NewSlack(t, testToken)
	p2, rec2 := newTestPlugin(t, Options{SlackAPIURL: fs.URL()})
	if err := p2.Config(ctx, quiet(), nil, map[string]any{ParamBotKey: testToken, ParamChannel: slackfake.UnknownChannel}); err != nil {
		t.Fatal(err)
	}
	_, merr := p2.Action(ctx, quiet(), &models.Action{Command: ActionNotify, Params: map[string]any{ParamMessage: "x"}})
	if merr == nil || !strings.Contains(merr.Messages[0], "channel_not_found") || len(rec2.Waits()) != 0 {
		t.Fatalf("channel_not_found: %v, waits %v", merr, rec2.Waits())
	}
}

func TestConfigRejectsBadInputAndKeepsPreviousConfig(t *testing.T) {
	fs := slackfake.NewSlack(t, testToken)
	wh := slackfake.NewWebhook(t)
	p, _ := newTestPlugin(t, Options{SlackAPIURL: fs.URL(), HTTPClient: wh.Client()})
	ctx := context.Background()

	good := map[string]any{ParamWebhookURL: wh.URL(), ParamEvents: []any{"machines.create.*"}}
	if err := p.Config(ctx, quiet(), nil, good); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"nothing", map[string]any{}, "Bad slack key"},
		{"key not a string", map[string]any{ParamBotKey: 12.0}, "Bad slack key"},
		{"both", map[string]any{ParamBotKey: testToken, ParamChannel: "C1", ParamWebhookURL: wh.URL()}, "only one of"},
		{"no channel", map[string]any{ParamBotKey: testToken}, "slack/channel is required"},
		{"bad token", map[string]any{ParamBotKey: "xoxb-wrong", ParamChannel: "C1"}, "invalid_auth"},
		{"http api-url", map[string]any{ParamBotKey: testToken, ParamChannel: "C1", ParamAPIURL: "http://slack.example.com/api/"}, "loopback"},
		{"relative api-url", map[string]any{ParamBotKey: testToken, ParamChannel: "C1", ParamAPIURL: "/api/"}, "slack/api-url"},
		{"api-url with user", map[string]any{ParamBotKey: testToken, ParamChannel: "C1", ParamAPIURL: "https://u:p@slack.com/api/"}, "user info"},
		{"http webhook", map[string]any{ParamWebhookURL: "http://hooks.slack.com/services/x"}, "https"},
		{"garbage webhook", map[string]any{ParamWebhookURL: "::not a url"}, "slack/webhook-url"},
		{"bad filter", map[string]any{ParamWebhookURL: wh.URL(), ParamEvents: []any{"machines.create"}}, "slack/events"},
		{"events not a list", map[string]any{ParamWebhookURL: wh.URL(), ParamEvents: "machines.*.*"}, "list of strings"},
		{"template syntax", map[string]any{ParamWebhookURL: wh.URL(), ParamTemplate: "{{.Type"}, "slack/template"},
		{"template field", map[string]any{ParamWebhookURL: wh.URL(), ParamTemplate: "{{.Nope}}"}, "Nope"},
	}
	for _, c := range cases {
		err := p.Config(ctx, quiet(), nil, c.params)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if err.Code != http.StatusBadRequest || err.Model != "plugin" || err.Key != "slack" || err.Type != "rpc" {
			t.Errorf("%s: error shape %+v", c.name, err)
		}
		if !strings.Contains(strings.Join(err.Messages, " "), c.want) {
			t.Errorf("%s: messages %v do not mention %q", c.name, err.Messages, c.want)
		}
		if strings.Contains(err.Error(), "xoxb-wrong") || strings.Contains(err.Error(), "secretXYZ") {
			t.Errorf("%s: error leaks a secret: %v", c.name, err)
		}
	}
	// The earlier, good configuration is still in force.
	if got := p.SelectEvents(ctx, quiet()); !reflect.DeepEqual(got, []string{"machines.create.*"}) {
		t.Fatalf("SelectEvents after bad configs = %v", got)
	}
	if err := p.Publish(ctx, quiet(), machineEvent("create", "still-works")); err != nil {
		t.Fatal(err)
	}
	plugintest.Eventually(t, 10*time.Second, "post with the old config", func() bool { return len(wh.Bodies()) == 1 })
}

// blockedNotifier returns a notifier whose sender holds every message
// until block is closed, and waits until its worker holds the first
// message, enqueued here.
func blockedNotifier(t *testing.T, opts NotifierOptions) (n *Notifier, block chan struct{}) {
	t.Helper()
	block = make(chan struct{})
	started := make(chan struct{}, 1)
	opts.Logger = quiet()
	n = NewNotifier(opts)
	n.SetSender(senderFunc(func(ctx context.Context, _ string) error {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-block:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	if err := n.Enqueue("first"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		close(block)
		t.Fatal("the worker did not start delivering the first message within 10s")
	}
	return n, block
}

func TestPublishNeverBlocksWhenQueueIsFull(t *testing.T) {
	n, block := blockedNotifier(t, NotifierOptions{QueueLen: 2}) // the queue is empty again
	for i := 0; i < 2; i++ {
		if err := n.Enqueue("fill"); err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	if err := n.Enqueue("overflow"); err != ErrQueueFull {
		t.Fatalf("want ErrQueueFull, got %v", err)
	}
	if st := n.Stats(); st.Dropped != 1 {
		t.Fatalf("stats %+v", st)
	}
	close(block)
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.Close(cctx)
	if st := n.Stats(); st.Delivered != 3 {
		t.Fatalf("Close must drain the queue: %+v", st)
	}
	if err := n.Enqueue("late"); err != ErrClosed {
		t.Fatalf("after Close: %v", err)
	}
}

func TestSecondCloseHonoursItsContext(t *testing.T) {
	n, block := blockedNotifier(t, NotifierOptions{})
	// The first Close waits for "first", which waits for block.
	firstDone := make(chan struct{})
	go func() {
		defer close(firstDone)
		n.Close(context.Background())
	}()
	plugintest.Eventually(t, 10*time.Second, "first Close marks the notifier closed", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.closed
	})
	// A second Close whose ctx has ended returns although the worker is busy.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	secondDone := make(chan struct{})
	go func() {
		defer close(secondDone)
		n.Close(ctx)
	}()
	select {
	case <-secondDone:
	case <-time.After(10 * time.Second):
		close(block)
		t.Fatal("a second Close ignored its ended ctx")
	}
	select {
	case <-firstDone:
		t.Fatal("the first Close returned before the queued message was delivered")
	default:
	}
	close(block)
	select {
	case <-firstDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the first Close did not return after delivery finished")
	}
	if st := n.Stats(); st.Delivered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPublishReportsQueueFull(t *testing.T) {
	wh := slackfake.NewWebhook(t)
	p, _ := newTestPlugin(t, Options{HTTPClient: wh.Client(), Notifier: NotifierOptions{QueueLen: 1}})
	ctx := context.Background()
	if err := p.Config(ctx, quiet(), nil, map[string]any{ParamWebhookURL: wh.URL()}); err != nil {
		t.Fatal(err)
	}
	// Hold the fake's lock so the first delivery blocks in the handler.
	resume := wh.Pause()
	defer resume()
	var full bool
	for i := 0; i < 5 && !full; i++ {
		if err := p.Publish(ctx, quiet(), machineEvent("create", "n")); err != nil {
			if err.Code != http.StatusServiceUnavailable {
				t.Fatalf("queue full error: %+v", err)
			}
			full = true
		}
	}
	if !full {
		t.Fatal("queue of 1 never reported full")
	}
	resume()
}

func TestActionErrors(t *testing.T) {
	p, _ := newTestPlugin(t, Options{})
	ctx := context.Background()
	if _, err := p.Action(ctx, quiet(), &models.Action{Command: "explode"}); err == nil || err.Code != 404 {
		t.Fatalf("unknown command: %v", err)
	}
	if _, err := p.Action(ctx, quiet(), &models.Action{Command: ActionNotify, Params: map[string]any{}}); err == nil || err.Code != 400 ||
		err.Messages[0] != "Must specify slack/message" {
		t.Fatalf("missing message: %v", err)
	}
	if _, err := p.Action(ctx, quiet(), &models.Action{Command: ActionNotify, Params: map[string]any{ParamMessage: "hi"}}); err == nil || err.Code != 409 {
		t.Fatalf("unconfigured: %v", err)
	}
}

func TestTemplateOutputIsBounded(t *testing.T) {
	tmpl, err := ParseTemplate(`{{range 100000}}0123456789{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Render(tmpl, machineEvent("create", "x")); err == nil || !strings.Contains(err.Error(), "40000") {
		t.Fatalf("want a length error, got %v", err)
	}
}

func TestContentPack(t *testing.T) {
	params := map[string]map[string]any{}
	for _, f := range []string{"slack-bot-key", "slack-webhook-url", "slack-channel", "slack-events", "slack-template", "slack-message", "slack-api-url"} {
		b, err := fsReadFile("params/" + f + ".yaml")
		if err != nil {
			t.Fatalf("content %s: %v", f, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		params[m["Name"].(string)] = m
	}
	bk := params[ParamBotKey]
	if bk["Secure"] != true || bk["Meta"].(map[string]any)["password"] != "hideme" {
		t.Errorf("slack/bot-key must be Secure with Meta password hideme: %v", bk)
	}
	if params[ParamWebhookURL]["Secure"] != true {
		t.Error("slack/webhook-url must be Secure")
	}
	def := params[ParamEvents]["Schema"].(map[string]any)["default"]
	if !reflect.DeepEqual(def, []any{"machines.create.*", "machines.delete.*", "plugins.stopped.*"}) {
		t.Errorf("slack/events default %v differs from DefaultEvents", def)
	}
	if d := params[ParamTemplate]["Schema"].(map[string]any)["default"]; d != DefaultTemplate {
		t.Errorf("slack/template default %q differs from DefaultTemplate", d)
	}
	// The bundle loads with the SDK's DRP directory-format reader.
	c, err := content.FromFS(Content())
	if err != nil {
		t.Fatalf("content bundle: %v", err)
	}
	if c.Meta.Name != "slack" || c.Meta.DisplayName != "Slack Integration" || len(c.Sections["params"]) != 7 {
		t.Fatalf("bundle meta %+v, %d params", c.Meta, len(c.Sections["params"]))
	}
	if c.Sections["params"][ParamBotKey].(map[string]any)["Secure"] != true {
		t.Fatal("slack/bot-key lost Secure in the bundle")
	}
}

type senderFunc func(ctx context.Context, text string) error

func (f senderFunc) Send(ctx context.Context, text string) error { return f(ctx, text) }
func (f senderFunc) Describe() string                            { return "test sender" }
