package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/drpfake"
	"github.com/provisionhq/provision/plugins/slack/internal/slackfake"
	"github.com/provisionhq/provision/plugins/slack/slackplugin"
	"github.com/provisionhq/provision/pluginsdk/content"
	"github.com/provisionhq/provision/pluginsdk/plugintest"
)

func TestMain(m *testing.M) { os.Exit(plugintest.Main(m)) }

func TestDefine(t *testing.T) {
	def := plugintest.FromPackage(t, ".").Define(t)
	if def.Name != "slack" || def.PluginVersion != 4 || def.HasPublish || len(def.RequiredParams) != 0 {
		t.Fatalf("definition: %+v", def)
	}
	if len(def.AvailableActions) != 1 || def.AvailableActions[0].Command != "slack-notify" || def.AvailableActions[0].Model != "" {
		t.Fatalf("actions: %+v", def.AvailableActions)
	}
	c, err := content.Unmarshal([]byte(def.Content), ".yaml")
	if err != nil {
		t.Fatalf("content: %v", err)
	}
	bk, _ := c.Sections["params"]["slack/bot-key"].(map[string]any)
	if c.Meta.Name != "slack" || bk["Secure"] != true {
		t.Fatalf("content meta %+v, bot-key %v", c.Meta, bk)
	}
}

// TestThroughSDK drives the provider through the SDK's listen/config/
// action/stop protocol: Config subscribes the slack/events filters on the
// API's websocket, a matching event pushed by the API ends up at the
// webhook, and slack-notify posts synchronously.
func TestThroughSDK(t *testing.T) {
	api := drpfake.New(t)
	wh := slackfake.NewWebhook(t)
	pl := plugintest.StartApp(t, newApp(slackplugin.Options{HTTPClient: wh.Client()}), api.Env())

	res := pl.Config(t, map[string]any{"slack/bot-key": "xoxb-1", "slack/webhook-url": wh.URL()})
	if inner := res.ConfigError(); res.Status != 400 || inner == nil || inner.Key != "slack" || !strings.Contains(inner.Messages[0], "only one of") {
		t.Fatalf("bad config: %d %s", res.Status, res.Body)
	}
	res = pl.Config(t, map[string]any{
		"slack/webhook-url": wh.URL(),
		"slack/events":      []string{"machines.create.*"},
	})
	if res.Status != 200 {
		t.Fatalf("config: %d %s", res.Status, res.Body)
	}
	created := models.Event{Type: "machines", Action: "create", Key: "3e7031fe-3062-45f1-835c-92541bc9cbd3",
		Principal: "user:rocketskates", Object: map[string]any{"Name": "node-1"}}
	plugintest.Eventually(t, 10*time.Second, "the plugin's subscription", func() bool { return api.Subscribers(&created) == 1 })
	if n := api.Subscribers(&models.Event{Type: "machines", Action: "update", Key: "x"}); n != 0 {
		t.Fatalf("subscribed to updates too (%d)", n)
	}
	if n := api.Publish(created); n != 1 {
		t.Fatalf("event reached %d streams", n)
	}
	plugintest.Eventually(t, 10*time.Second, "the webhook post", func() bool { return len(wh.Texts()) == 1 })
	if got := wh.Texts()[0]; got != "*machines create* 3e7031fe-3062-45f1-835c-92541bc9cbd3 (node-1) by user:rocketskates" {
		t.Fatalf("posted %q", got)
	}

	res = pl.Action(t, &models.Action{Command: "slack-notify", Plugin: "slack", Params: map[string]any{"slack/message": "workflow done"}})
	if res.Status != 200 || strings.TrimSpace(string(res.Body)) != `"Posted"` {
		t.Fatalf("slack-notify: %d %s", res.Status, res.Body)
	}
	if texts := wh.Texts(); len(texts) != 2 || texts[1] != "workflow done" {
		t.Fatalf("texts %v", texts)
	}
	res = pl.Action(t, &models.Action{Command: "slack-notify", Params: map[string]any{}})
	if e := res.Error(); res.Status != 400 || e == nil || e.Messages[0] != "Must specify slack/message" {
		t.Fatalf("slack-notify without message: %d %s", res.Status, res.Body)
	}
	for _, l := range pl.Host.Lines() {
		if strings.Contains(l.Message, wh.Secret()) {
			t.Fatalf("log line leaks the webhook URL: %+v", l)
		}
	}
	pl.Stop(t)
}
