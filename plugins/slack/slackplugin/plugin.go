package slackplugin

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/provisionhq/provision/client"
	"github.com/provisionhq/provision/models"
	"github.com/provisionhq/provision/plugins/internal/pluginutil"
)

// errKey is the Key of every error the plugin returns, as in DRP.
const errKey = ProviderName

// Options configures a Plugin. The zero value talks to the real Slack.
type Options struct {
	// SlackAPIURL is the Web API base URL used when slack/api-url is unset
	// (default https://slack.com/api/; tests point it at slacktest).
	SlackAPIURL string
	// HTTPClient is used for Slack API and webhook calls (tests pass an
	// httptest TLS server's client). Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Notifier tunes the delivery queue.
	Notifier NotifierOptions
	// ConfigTimeout bounds the auth.test call in Config (default 15s).
	ConfigTimeout time.Duration
	// ActionTimeout bounds slack-notify, retries included (default 2m).
	ActionTimeout time.Duration
}

// Plugin implements the slack provider: Config, SelectEvents, Publish,
// Action and Stop of the pluginsdk contract.
type Plugin struct {
	opts Options

	mu       sync.Mutex
	notifier *Notifier
	events   []string
	filters  []models.EventFilter
	tmpl     *template.Template
}

// New returns an unconfigured plugin.
func New(opts Options) *Plugin {
	if opts.ConfigTimeout <= 0 {
		opts.ConfigTimeout = 15 * time.Second
	}
	if opts.ActionTimeout <= 0 {
		opts.ActionTimeout = 2 * time.Minute
	}
	return &Plugin{opts: opts}
}

// settings is a validated configuration, applied only when all of it is
// valid so that a bad Config changes nothing.
type settings struct {
	sender  Sender
	events  []string
	filters []models.EventFilter
	tmpl    *template.Template
}

func badConfig(format string, args ...any) *models.Error {
	return pluginutil.MakeError(errKey, http.StatusBadRequest, format, args...)
}

// sampleEvent is rendered at Config time so that template execution errors
// (unknown fields, bad function arguments) are reported to the operator.
// Each call builds a new event: concurrent Configs share nothing.
func sampleEvent() *models.Event {
	return &models.Event{
		Type: "machines", Action: "create", Key: "00000000-0000-0000-0000-000000000000", Principal: "user:rocketskates",
		Object: map[string]any{"Name": "sample", "Uuid": "00000000-0000-0000-0000-000000000000", "Params": map[string]any{}},
	}
}

func (p *Plugin) parse(ctx context.Context, params map[string]any) (*settings, *models.Error) {
	botKey, err := pluginutil.StringParam(params, ParamBotKey, "")
	if err != nil {
		return nil, badConfig("Bad slack key: %v", err)
	}
	webhook, err := pluginutil.StringParam(params, ParamWebhookURL, "")
	if err != nil {
		return nil, badConfig("%v", err)
	}
	channel, err := pluginutil.StringParam(params, ParamChannel, "")
	if err != nil {
		return nil, badConfig("%v", err)
	}
	botKey, webhook, channel = strings.TrimSpace(botKey), strings.TrimSpace(webhook), strings.TrimSpace(channel)

	s := &settings{}
	switch {
	case botKey != "" && webhook != "":
		return nil, badConfig("Set only one of %s and %s", ParamBotKey, ParamWebhookURL)
	case botKey == "" && webhook == "":
		return nil, badConfig("Bad slack key: set %s (with %s) or %s", ParamBotKey, ParamChannel, ParamWebhookURL)
	case botKey != "":
		if channel == "" {
			return nil, badConfig("%s is required with %s: the channel ID or #name to post to", ParamChannel, ParamBotKey)
		}
		apiURL, err := pluginutil.StringParam(params, ParamAPIURL, p.opts.SlackAPIURL)
		if err != nil {
			return nil, badConfig("%v", err)
		}
		if apiURL, err = checkAPIURL(strings.TrimSpace(apiURL)); err != nil {
			return nil, badConfig("%s: %v", ParamAPIURL, err)
		}
		bot := NewBotSender(botKey, channel, apiURL, p.opts.HTTPClient)
		actx, cancel := context.WithTimeout(ctx, p.opts.ConfigTimeout)
		defer cancel()
		if _, err := bot.AuthTest(actx); err != nil {
			return nil, badConfig("%s rejected by Slack auth.test: %v", ParamBotKey, err)
		}
		s.sender = bot
	default:
		wh, err := NewWebhookSender(webhook, p.opts.HTTPClient)
		if err != nil {
			return nil, badConfig("%s: %v", ParamWebhookURL, err)
		}
		s.sender = wh
	}

	if s.events, err = pluginutil.StringListParam(params, ParamEvents, DefaultEvents()); err != nil {
		return nil, badConfig("%v", err)
	}
	if s.filters, err = models.ParseEventFilters(s.events); err != nil {
		return nil, badConfig("%s: %v", ParamEvents, err)
	}
	text, err := pluginutil.StringParam(params, ParamTemplate, DefaultTemplate)
	if err != nil {
		return nil, badConfig("%v", err)
	}
	if s.tmpl, err = ParseTemplate(text); err != nil {
		return nil, badConfig("%v", err)
	}
	if _, err := Render(s.tmpl, sampleEvent()); err != nil {
		return nil, badConfig("%v", err)
	}
	return s, nil
}

// Config validates the params (exactly one of slack/bot-key, checked with
// auth.test, and slack/webhook-url, checked for syntax; slack/events;
// slack/template) and switches delivery to them. An invalid configuration
// is answered with a 400 plugin error, which the host shows in
// PluginErrors, and leaves the previous configuration in place.
func (p *Plugin) Config(ctx context.Context, l *slog.Logger, _ *client.Client, params map[string]any) *models.Error {
	s, merr := p.parse(ctx, params)
	if merr != nil {
		return merr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notifier == nil {
		opts := p.opts.Notifier
		if opts.Logger == nil {
			opts.Logger = l
		}
		p.notifier = NewNotifier(opts)
	}
	p.notifier.SetSender(s.sender)
	p.events, p.filters, p.tmpl = s.events, s.filters, s.tmpl
	l.Info("slack configured", "destination", s.sender.Describe(), "events", s.events)
	return nil
}

// SelectEvents returns the slack/events filters, so that the server only
// sends the events the operator asked for.
func (p *Plugin) SelectEvents(_ context.Context, _ *slog.Logger) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.events...)
}

// Publish renders a matching event and queues it; it never waits for
// Slack. Events not matching slack/events are ignored (the server already
// filters; this guards against a broader subscription).
func (p *Plugin) Publish(_ context.Context, l *slog.Logger, e *models.Event) *models.Error {
	p.mu.Lock()
	n, filters, tmpl := p.notifier, p.filters, p.tmpl
	p.mu.Unlock()
	if n == nil || e == nil || !models.MatchAnyEventFilter(filters, e) {
		return nil
	}
	text, err := Render(tmpl, e)
	if err != nil {
		return pluginutil.MakeError(errKey, http.StatusBadRequest, "%v", err)
	}
	if err := n.Enqueue(text); err != nil {
		l.Warn("slack notification dropped", "event", e.Type+"."+e.Action+"."+e.Key, "error", err)
		return pluginutil.MakeError(errKey, http.StatusServiceUnavailable, "%v", err)
	}
	return nil
}

// Action runs slack-notify: it posts slack/message now (with the same
// retries as queued messages, bounded by ActionTimeout) and answers
// "Posted".
func (p *Plugin) Action(ctx context.Context, l *slog.Logger, a *models.Action) (any, *models.Error) {
	if a.Command != ActionNotify {
		return nil, pluginutil.MakeError(errKey, http.StatusNotFound, "Unknown command: %s", a.Command)
	}
	msg, err := pluginutil.ValidateString(ParamMessage, a.Params[ParamMessage])
	if err != nil {
		return nil, pluginutil.MakeError(errKey, http.StatusBadRequest, "%v", err)
	}
	if strings.TrimSpace(msg) == "" {
		return nil, pluginutil.MakeError(errKey, http.StatusBadRequest, "%s is empty", ParamMessage)
	}
	if len(msg) > MaxTextBytes {
		return nil, pluginutil.MakeError(errKey, http.StatusBadRequest, "%s is longer than %d bytes", ParamMessage, MaxTextBytes)
	}
	p.mu.Lock()
	n := p.notifier
	p.mu.Unlock()
	if n == nil {
		return nil, pluginutil.MakeError(errKey, http.StatusConflict, "slack plugin is not configured")
	}
	actx, cancel := context.WithTimeout(ctx, p.opts.ActionTimeout)
	defer cancel()
	if err := n.Deliver(actx, msg); err != nil {
		return nil, pluginutil.MakeError(errKey, http.StatusConflict, "Command failed: %s: %v", ActionNotify, err)
	}
	l.Info("slack-notify posted")
	return "Posted", nil
}

// Stop flushes the queue for up to ctx's deadline (10 s when it has none)
// and stops the worker.
func (p *Plugin) Stop(ctx context.Context, _ *slog.Logger) {
	p.mu.Lock()
	n := p.notifier
	p.notifier = nil
	p.mu.Unlock()
	if n == nil {
		return
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	n.Close(ctx)
}

// Stats returns the delivery counters (zero before the first Config).
func (p *Plugin) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notifier == nil {
		return Stats{}
	}
	return p.notifier.Stats()
}
