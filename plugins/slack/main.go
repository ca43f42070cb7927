// Command slack is the slack plugin provider: it posts the provision events
// an operator selects (slack/events) and workflow messages (system action
// slack-notify) to Slack through an incoming webhook or chat.postMessage.
// The logic lives in package slackplugin; this is the pluginsdk wiring.
package main

import (
	"github.com/provisionhq/provision/plugins/slack/slackplugin"
	"github.com/provisionhq/provision/pluginsdk"
)

// version is the provider version; set with -ldflags "-X main.version=...".
var version = "v4.8.0"

// newApp builds the provider's command line around a plugin with opts.
func newApp(opts slackplugin.Options) *pluginsdk.App {
	def := slackplugin.Definition(version)
	return pluginsdk.InitApp(slackplugin.ProviderName, "Sends events as specified slack bot.", version, &def, slackplugin.New(opts)).
		WithContent(slackplugin.Content())
}

func main() { newApp(slackplugin.Options{}).Main() }
