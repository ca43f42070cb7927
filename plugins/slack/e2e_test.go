package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/e2etest"
	"github.com/provisionhq/provision/plugins/slack/internal/slackfake"
	"github.com/provisionhq/provision/plugins/slack/slackplugin"
)

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestWebhookUnderProvisiond runs the built provider under provisiond with
// an incoming webhook: the Secure slack/webhook-url is stored sealed and
// reaches the plugin decrypted (the fake only accepts its secret path), a
// selected machine event is posted, an unselected one is not, the system
// action slack-notify posts through POST /api/v3/system/actions/slack-notify,
// a webhook URL the plugin rejects shows in PluginErrors, and deleting the
// Plugin stops it.
//
// The plugin process inherits provisiond's environment, so SSL_CERT_FILE
// (set here before provisiond starts) makes it trust the fake's certificate.
func TestWebhookUnderProvisiond(t *testing.T) {
	wh := slackfake.NewWebhook(t)
	t.Setenv("SSL_CERT_FILE", wh.CertFile(t))
	env := e2etest.Start(t, e2etest.Options{Provider: slackplugin.ProviderName})
	c, ctx := env.Client, env.Ctx
	if p := env.WaitParam(slackplugin.ParamWebhookURL); !p.Secure {
		t.Fatalf("%s is not Secure", slackplugin.ParamWebhookURL)
	}
	stopped := env.Watch("plugins.stopped.*")

	env.CreatePlugin(&models.Plugin{Name: "slack", Provider: "slack", Params: map[string]any{
		slackplugin.ParamWebhookURL: wh.URL(),
		slackplugin.ParamEvents:     []string{"machines.create.*"},
	}})
	stored := &models.Plugin{}
	if err := c.Get(ctx, "plugins", "slack", stored); err != nil {
		t.Fatal(err)
	}
	if v, ok := stored.Params[slackplugin.ParamWebhookURL].(map[string]any); !ok || v["Payload"] == nil ||
		strings.Contains(asJSON(stored), wh.Secret()) {
		t.Fatalf("webhook URL not stored sealed: %v", stored.Params[slackplugin.ParamWebhookURL])
	}
	// machines.update is not selected: it must not be posted. It happens
	// before the second create, so once that create's message has arrived
	// (one worker, events in order) the update's absence is certain.
	m := &models.Machine{}
	if err := c.Create(ctx, "machines", &models.Machine{Name: "e2e-node"}, m); err != nil {
		t.Fatal(err)
	}
	env.Wait("the machine create message", func() bool { return len(wh.Texts()) >= 1 })
	if got := wh.Texts()[0]; !strings.HasPrefix(got, "*machines create* "+m.UUID()+" (e2e-node)") {
		t.Fatalf("posted %q", got)
	}
	if err := c.SetParam(ctx, "machines", m.UUID(), "e2e/note", "x"); err != nil {
		t.Fatal(err)
	}
	m2 := &models.Machine{}
	if err := c.Create(ctx, "machines", &models.Machine{Name: "e2e-node2"}, m2); err != nil {
		t.Fatal(err)
	}
	env.Wait("the second create message", func() bool { return len(wh.Texts()) >= 2 })
	if texts := wh.Texts(); len(texts) != 2 || !strings.Contains(texts[1], "(e2e-node2)") {
		t.Fatalf("posted %q", texts)
	}

	var out any
	if err := c.RunAction(ctx, "system", "", slackplugin.ActionNotify, "", map[string]any{slackplugin.ParamMessage: "workflow done"}, &out); err != nil || out != "Posted" {
		t.Fatalf("slack-notify: %v %v\nserver logs:\n%s", out, err, env.Logs())
	}
	if texts := wh.Texts(); len(texts) != 3 || texts[2] != "workflow done" {
		t.Fatalf("texts after slack-notify: %q", texts)
	}
	// The action's required param is checked before the plugin is called.
	err := c.RunAction(ctx, "system", "", slackplugin.ActionNotify, "", nil, &out)
	if me, ok := err.(*models.Error); !ok || me.Code < 400 || me.Code >= 500 || !strings.Contains(strings.Join(me.Messages, " "), slackplugin.ParamMessage) {
		t.Fatalf("slack-notify without a message: %v", err)
	}

	// A URL the param schema lets through but the plugin rejects.
	if err := c.Create(ctx, "plugins", &models.Plugin{Name: "slack-bad", Provider: "slack", Params: map[string]any{
		slackplugin.ParamWebhookURL: "https:///services/T000/B000/nohost",
	}}, nil); err != nil {
		t.Fatalf("create slack-bad: %v", err)
	}
	var bad models.Plugin
	env.Wait("slack-bad's PluginErrors", func() bool {
		return c.Get(ctx, "plugins", "slack-bad", &bad) == nil &&
			slices.ContainsFunc(bad.PluginErrors, func(s string) bool { return strings.Contains(s, "URL has no host") })
	})
	if strings.Contains(strings.Join(bad.PluginErrors, " "), "nohost") {
		t.Fatalf("PluginErrors repeat the secret URL: %q", bad.PluginErrors)
	}

	if err := c.Delete(ctx, "plugins", "slack", nil); err != nil {
		t.Fatal(err)
	}
	env.NextEvent(stopped, "plugins", "stopped", "slack")
	// slack-bad never got configured, so nothing offers slack-notify now.
	err = c.Do(ctx, "GET", "system/actions/"+slackplugin.ActionNotify, nil, nil, &out)
	if me, ok := err.(*models.Error); !ok || me.Code != 404 {
		t.Fatalf("slack-notify after the delete: %v", err)
	}
}

// TestBotTokenUnderProvisiond runs the bot-token path under provisiond
// against slack-go's slacktest server: Config calls auth.test with the
// decrypted slack/bot-key, events and slack-notify go to chat.postMessage
// on slack/channel, and a wrong token shows in PluginErrors.
func TestBotTokenUnderProvisiond(t *testing.T) {
	const token = "xoxb-e2e-0123456789"
	fs := slackfake.NewSlack(t, token)
	env := e2etest.Start(t, e2etest.Options{Provider: slackplugin.ProviderName})
	c, ctx := env.Client, env.Ctx
	env.WaitParam(slackplugin.ParamAPIURL)

	env.CreatePlugin(&models.Plugin{Name: "slack-bot", Provider: "slack", Params: map[string]any{
		slackplugin.ParamBotKey:  token,
		slackplugin.ParamChannel: "#ops",
		slackplugin.ParamAPIURL:  fs.URL(),
		slackplugin.ParamEvents:  []string{"machines.delete.*"},
	}})
	if fs.AuthCalls() == 0 {
		t.Fatal("the plugin was configured without auth.test")
	}
	m := &models.Machine{}
	if err := c.Create(ctx, "machines", &models.Machine{Name: "bot-node"}, m); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "machines", m.UUID(), nil); err != nil {
		t.Fatal(err)
	}
	env.Wait("the machine delete post", func() bool { return len(fs.Posts()) >= 1 })
	if p := fs.Posts()[0]; p.Get("channel") != "#ops" || !strings.HasPrefix(p.Get("text"), "*machines delete* "+m.UUID()+" (bot-node)") {
		t.Fatalf("posted %v", p)
	}
	var out any
	if err := c.RunAction(ctx, "system", "", slackplugin.ActionNotify, "slack-bot", map[string]any{slackplugin.ParamMessage: "from a workflow"}, &out); err != nil || out != "Posted" {
		t.Fatalf("slack-notify: %v %v\nserver logs:\n%s", out, err, env.Logs())
	}
	if texts := fs.Texts(); len(texts) != 2 || texts[1] != "from a workflow" {
		t.Fatalf("texts %q", texts)
	}

	if err := c.Create(ctx, "plugins", &models.Plugin{Name: "slack-wrong", Provider: "slack", Params: map[string]any{
		slackplugin.ParamBotKey: "xoxb-wrong", slackplugin.ParamChannel: "#ops", slackplugin.ParamAPIURL: fs.URL(),
	}}, nil); err != nil {
		t.Fatal(err)
	}
	var wrong models.Plugin
	env.Wait("slack-wrong's PluginErrors", func() bool {
		return c.Get(ctx, "plugins", "slack-wrong", &wrong) == nil &&
			slices.ContainsFunc(wrong.PluginErrors, func(s string) bool { return strings.Contains(s, "invalid_auth") })
	})
	if strings.Contains(asJSON(wrong), "xoxb-wrong") {
		t.Fatalf("the wrong token is visible in the Plugin: %s", asJSON(wrong))
	}
}
