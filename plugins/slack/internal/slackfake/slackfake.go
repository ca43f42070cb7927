// Package slackfake provides stand-ins for the two Slack endpoints the
// slack plugin talks to, for tests in this process or of a plugin process
// under provisiond: Slack's Web API (auth.test and chat.postMessage on top
// of slack-go's slacktest server) and an incoming webhook on a TLS test
// server. Both check requests as Slack does (token, method, path, content
// type, non-empty text), keep what they accepted, and can be told to rate
// limit or fail.
package slackfake

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slack-go/slack/slacktest"
)

// UnknownChannel is a channel the Web API fake answers channel_not_found for.
const UnknownChannel = "C-UNKNOWN"

// Slack is a Slack Web API fake. Point the plugin at URL().
type Slack struct {
	*slacktest.Server
	token string

	mu          sync.Mutex
	posts       []url.Values
	rateLimited int // answer this many chat.postMessage calls with 429 first
	retryAfter  string
	authCalls   int
}

func tokenOf(r *http.Request, form url.Values) string {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimPrefix(h, "Bearer ")
	}
	return form.Get("token")
}

// NewSlack starts a Web API fake that accepts only token; it stops when the
// test ends.
func NewSlack(t testing.TB, token string) *Slack {
	t.Helper()
	f := &Slack{token: token}
	f.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/auth.test", func(w http.ResponseWriter, r *http.Request) {
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			f.mu.Lock()
			f.authCalls++
			f.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			if tokenOf(r, r.PostForm) != f.token {
				_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
				return
			}
			_, _ = io.WriteString(w, `{"ok":true,"url":"https://test.slack.com/","team":"Test Team","user":"provision","team_id":"T1","user_id":"U1"}`)
		})
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			if err := r.ParseForm(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			if tokenOf(r, r.PostForm) != f.token {
				_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
				return
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.rateLimited > 0 {
				f.rateLimited--
				w.Header().Set("Retry-After", f.retryAfter)
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
				return
			}
			if r.PostForm.Get("channel") == "" || r.PostForm.Get("text") == "" {
				_, _ = io.WriteString(w, `{"ok":false,"error":"no_text"}`)
				return
			}
			if r.PostForm.Get("channel") == UnknownChannel {
				_, _ = io.WriteString(w, `{"ok":false,"error":"channel_not_found"}`)
				return
			}
			f.posts = append(f.posts, r.PostForm)
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": r.PostForm.Get("channel"), "ts": "1700000000.000100"})
		})
	})
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

// URL is the API base URL (plain http on 127.0.0.1, ending in "/").
func (f *Slack) URL() string { return f.GetAPIURL() }

// Posts returns the accepted chat.postMessage forms, oldest first.
func (f *Slack) Posts() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.posts...)
}

// Texts returns the text of every accepted post, oldest first.
func (f *Slack) Texts() []string {
	var out []string
	for _, p := range f.Posts() {
		out = append(out, p.Get("text"))
	}
	return out
}

// RateLimit answers the next n chat.postMessage calls with 429 and
// Retry-After: retryAfter.
func (f *Slack) RateLimit(n int, retryAfter string) {
	f.mu.Lock()
	f.rateLimited, f.retryAfter = n, retryAfter
	f.mu.Unlock()
}

// AuthCalls counts auth.test calls, accepted or not.
func (f *Slack) AuthCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.authCalls
}

// Webhook is an incoming-webhook endpoint on a TLS test server. It accepts
// only POST application/json {"text":...} on its secret path.
type Webhook struct {
	*httptest.Server
	path string

	mu          sync.Mutex
	bodies      []map[string]any
	requests    int
	rateLimited int
	retryAfter  string
	failWith    int // answer every request with this status when non-zero
}

// NewWebhook starts a webhook fake; it stops when the test ends.
func NewWebhook(t testing.TB) *Webhook {
	t.Helper()
	f := &Webhook{path: "/services/T000/B000/secretXYZ"}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests++
		if r.Method != http.MethodPost || r.URL.Path != f.path {
			http.Error(w, "no_service", http.StatusNotFound)
			return
		}
		if f.failWith != 0 {
			http.Error(w, "invalid_token", f.failWith)
			return
		}
		if f.rateLimited > 0 {
			f.rateLimited--
			w.Header().Set("Retry-After", f.retryAfter)
			http.Error(w, "rate_limited", http.StatusTooManyRequests)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		if s, _ := body["text"].(string); s == "" {
			http.Error(w, "no_text", http.StatusBadRequest)
			return
		}
		f.bodies = append(f.bodies, body)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(f.Close)
	return f
}

// URL is the secret webhook URL to configure.
func (f *Webhook) URL() string { return f.Server.URL + f.path }

// Secret is the path component that makes the URL a credential.
func (f *Webhook) Secret() string { return "secretXYZ" }

// Bodies returns the accepted JSON bodies, oldest first.
func (f *Webhook) Bodies() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.bodies...)
}

// Texts returns the "text" of every accepted body, oldest first.
func (f *Webhook) Texts() []string {
	var out []string
	for _, b := range f.Bodies() {
		s, _ := b["text"].(string)
		out = append(out, s)
	}
	return out
}

// Requests counts every request, accepted or not.
func (f *Webhook) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// RateLimit answers the next n requests with 429 and Retry-After: retryAfter.
func (f *Webhook) RateLimit(n int, retryAfter string) {
	f.mu.Lock()
	f.rateLimited, f.retryAfter = n, retryAfter
	f.mu.Unlock()
}

// FailWith answers every request with status (0: stop failing).
func (f *Webhook) FailWith(status int) {
	f.mu.Lock()
	f.failWith = status
	f.mu.Unlock()
}

// Pause makes requests block in the handler until the returned resume
// function is called (once; later calls do nothing).
func (f *Webhook) Pause() (resume func()) {
	f.mu.Lock()
	var once sync.Once
	return func() { once.Do(f.mu.Unlock) }
}

// CertFile writes the server's self-signed certificate as PEM into a
// temporary file and returns its path: setting SSL_CERT_FILE to it makes a
// Go program (such as the plugin under provisiond) trust the fake.
func (f *Webhook) CertFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "webhook-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatalf("slackfake: write certificate: %v", err)
	}
	return path
}
