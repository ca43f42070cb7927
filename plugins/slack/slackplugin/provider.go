package slackplugin

import (
	"embed"
	"io/fs"

	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/pluginsdk/content"
)

// Param names. They are part of the content pack and of DRP compatibility
// (slack/bot-key), so they must not change.
const (
	ParamBotKey     = "slack/bot-key"
	ParamWebhookURL = "slack/webhook-url"
	ParamChannel    = "slack/channel"
	ParamEvents     = "slack/events"
	ParamTemplate   = "slack/template"
	ParamMessage    = "slack/message"
	// ParamAPIURL is new: the Web API base URL for the bot token path.
	ParamAPIURL = "slack/api-url"
)

// ProviderName is the provider name DRP content refers to.
const ProviderName = "slack"

// ActionNotify is the system action that posts slack/message.
const ActionNotify = "slack-notify"

// DefaultEvents returns the filters used when slack/events is unset (a new
// slice on every call).
func DefaultEvents() []string {
	return []string{"machines.create.*", "machines.delete.*", "plugins.stopped.*"}
}

// DefaultTemplate is the Go text/template used when slack/template is unset.
// It names the event type, action, key, object name and principal.
const DefaultTemplate = `*{{.Type}} {{.Action}}* {{.Key}}{{with .Name}} ({{.}}){{end}}{{with .Principal}} by {{.}}{{end}}`

//go:embed all:content
var contentFS embed.FS

// Content returns the embedded content pack in DRP's directory format
// (._<Field>.meta files and one directory per section).
func Content() fs.FS {
	return content.Root(contentFS)
}

// Definition returns the provider definition printed by `define`.
//
// Deliberate deviations from DRP (see README): HasPublish is false because
// the plugin selects its events with SelectEvents instead of receiving every
// event synchronously; there are no plugin-level RequiredParams because
// either slack/webhook-url or slack/bot-key may be used (Config checks that
// exactly one is set); and the system action slack-notify is new.
func Definition(version string) models.PluginProvider {
	return models.PluginProvider{
		Name:          ProviderName,
		Version:       version,
		PluginVersion: 4,
		HasPublish:    false,
		AvailableActions: []models.AvailableAction{{
			Model:          "",
			Command:        ActionNotify,
			RequiredParams: []string{ParamMessage},
			OptionalParams: []string{},
		}},
		RequiredParams: []string{},
		OptionalParams: []string{ParamBotKey, ParamWebhookURL, ParamChannel, ParamEvents, ParamTemplate, ParamAPIURL},
	}
}
