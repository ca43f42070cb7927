package slackplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Sender delivers one message text to Slack.
type Sender interface {
	// Send posts text once; it does not retry.
	Send(ctx context.Context, text string) error
	// Describe names the destination for logs without revealing secrets.
	Describe() string
}

// WebhookSender posts to an incoming webhook URL.
type WebhookSender struct {
	url    string
	client *http.Client
}

// NewWebhookSender validates rawURL (absolute https URL with a host) and
// returns a sender using client (http.DefaultClient's transport with a
// timeout when nil). The returned error never contains the URL, which is a
// credential.
func NewWebhookSender(rawURL string, client *http.Client) (*WebhookSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("scheme must be https, not %q", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("URL has no host")
	}
	if u.User != nil {
		return nil, errors.New("URL must not carry user info")
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &WebhookSender{url: rawURL, client: client}, nil
}

// Send implements Sender with a JSON {"text": ...} POST.
func (w *WebhookSender) Send(ctx context.Context, text string) error {
	err := slack.PostWebhookCustomHTTPContext(ctx, w.url, w.client, &slack.WebhookMessage{Text: text})
	return redactURL(err)
}

// Describe implements Sender; it shows only the webhook's host.
func (w *WebhookSender) Describe() string {
	u, _ := url.Parse(w.url)
	return "webhook on " + u.Host
}

// transportError is a failed HTTP round trip whose message no longer
// contains the request URL.
// transportError is a webhook post that failed before an HTTP answer: the
// *url.Error's operation and cause without its URL, which is secret.
type transportError struct {
	op  string
	err error
}

// Error implements error, naming the failed step.
func (e *transportError) Error() string { return "post webhook: " + e.op + ": " + e.err.Error() }

// Unwrap returns the redacted cause (timeouts stay recognisable).
func (e *transportError) Unwrap() error { return e.err }

// redactURL replaces a *url.Error, whose message carries the secret webhook
// URL, with a transportError that does not.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &transportError{op: ue.Op, err: ue.Err}
	}
	return err
}

// checkAPIURL validates a Slack Web API base URL ("" means Slack's own):
// https, or plain http to a loopback address only, so that a bot token is
// never sent unencrypted over a network. It returns the URL with the
// trailing "/" slack-go expects.
func checkAPIURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q must not carry user info, a query or a fragment", raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return "", fmt.Errorf("%q must use https (plain http is only allowed to a loopback address)", raw)
	}
	if !strings.HasSuffix(raw, "/") {
		raw += "/"
	}
	return raw, nil
}

// isLoopback reports whether host is localhost or a loopback IP.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// BotSender posts with chat.postMessage and a bot token.
type BotSender struct {
	api     *slack.Client
	channel string
}

// NewBotSender returns a sender for token and channel. apiURL overrides
// Slack's API base URL (tests); client overrides the HTTP client.
func NewBotSender(token, channel, apiURL string, client *http.Client) *BotSender {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	opts := []slack.Option{slack.OptionHTTPClient(client)}
	if apiURL != "" {
		opts = append(opts, slack.OptionAPIURL(apiURL))
	}
	return &BotSender{api: slack.New(token, opts...), channel: channel}
}

// AuthTest checks the token with auth.test and returns "<user>@<team>".
func (b *BotSender) AuthTest(ctx context.Context) (string, error) {
	r, err := b.api.AuthTestContext(ctx)
	if err != nil {
		return "", err
	}
	return r.User + "@" + r.Team, nil
}

// Send implements Sender.
func (b *BotSender) Send(ctx context.Context, text string) error {
	_, _, err := b.api.PostMessageContext(ctx, b.channel, slack.MsgOptionText(text, false))
	return err
}

// Describe implements Sender.
func (b *BotSender) Describe() string { return "chat.postMessage to " + b.channel }

// slackRetryable reports whether a Slack API error code is worth retrying.
func slackRetryable(code string) bool {
	switch code {
	case "internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited":
		return true
	}
	return false
}

// classify tells how to react to a Send error: retryAfter > 0 when Slack
// asked to wait (429 Retry-After), retry when a later attempt may succeed
// (network trouble, 5xx, Slack-side errors). Everything else (bad token,
// unknown channel, 4xx from a webhook) is permanent.
func classify(err error) (retry bool, retryAfter time.Duration) {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return true, rl.RetryAfter
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		return sc.Code >= 500 || sc.Code == http.StatusRequestTimeout, 0
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return slackRetryable(se.Err), 0
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true, 0
	}
	var te *transportError
	if errors.As(err, &te) {
		return true, 0
	}
	return errors.Is(err, context.DeadlineExceeded), 0
}
